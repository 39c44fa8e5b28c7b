import type { Config } from '../config.js';
import { PreprocessError, runPreprocessing, type CaptionStrategy, type EntityType, type PreprocessOptions } from '../preprocess/index.js';
import type { TaskStore } from '../store/tasks.js';
import { monotonic, preprocessProgress, PREPROCESS_SHARE } from '../training/progress.js';
import { trainingStage } from '../training/stage.js';
import type { ProgressAnnouncer } from '../webhooks/outbox.js';
import { StageFailure, type StageHandler, type StageHandlers } from './stages.js';

export interface HandlerDeps {
  config: Config;
  tasks: TaskStore;
  announcer: ProgressAnnouncer;
  preprocessOptions?: PreprocessOptions;
}

/** The preprocessing stage: sources to `dataset/`, reporting stage and file counts as it goes. */
export function preprocessingStage(deps: HandlerDeps): StageHandler {
  return async (ctx) => {
    const { task } = ctx;
    let progress = task.progress;
    const sources = JSON.parse(task.source_images) as string[];
    if (sources.length === 0) {
      throw new StageFailure('The task has no source_images: give at least one image URL, path, data: URI, upload reference or zip.');
    }
    try {
      const result = await runPreprocessing(
        {
          taskId: task.id,
          tenantId: task.origin_tenant_id,
          taskDir: task.training_folder,
          sources,
          triggerWord: task.trigger_word,
          entityType: task.entity_type as EntityType,
          transforms: task.preprocessing_transforms ? JSON.parse(task.preprocessing_transforms) : null,
          captioning: { strategy: task.preprocessing_captioning_strategy as CaptionStrategy, prompt: task.preprocessing_captioning_prompt },
        },
        deps.config,
        {
          signal: ctx.signal,
          onProgress: async ({ stage, processed, total }) => {
            progress = monotonic(progress, preprocessProgress(stage, processed, total));
            await ctx.update({ preprocessing_stage: stage, processed_files_count: processed, total_files_count: total, progress });
          },
        },
        deps.preprocessOptions,
      );
      const files = result.accepted + result.rejected.length;
      return {
        set: {
          processed_dataset_path: result.datasetDir,
          processed_files_count: files,
          total_files_count: files,
          progress: monotonic(progress, PREPROCESS_SHARE),
        },
      };
    } catch (err) {
      if (err instanceof PreprocessError) throw new StageFailure(err.message);
      throw err;
    }
  };
}

export function realHandlers(deps: HandlerDeps): StageHandlers {
  return { preprocess: preprocessingStage(deps), train: trainingStage(deps) };
}
