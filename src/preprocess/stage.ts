import type { Config } from '../config.js';
import { JobFailure, type JobHandler } from '../engine/job-kind.js';
import type { TrainingTaskRow } from '../store/db.js';
import { monotonic, preprocessProgress, PREPROCESS_SHARE } from '../domain/progress.js';
import { runPreprocessing } from './run.js';
import { PreprocessError, type CaptionStrategy, type EntityType, type PreprocessOptions, type TransformSpec } from './types.js';

/** The preprocessing stage: sources to `dataset/`, reporting stage and file counts as it goes. */
export function preprocessingStage(config: Config, options?: PreprocessOptions): JobHandler<TrainingTaskRow> {
  return async (ctx) => {
    const task = ctx.row;
    let progress = task.progress;
    const sources = JSON.parse(task.source_images) as string[];
    if (sources.length === 0) {
      throw new JobFailure('The task has no source_images: give at least one image URL, path, data: URI, upload reference or zip.');
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
          transforms: task.preprocessing_transforms ? (JSON.parse(task.preprocessing_transforms) as TransformSpec[]) : null,
          captioning: { strategy: task.preprocessing_captioning_strategy as CaptionStrategy, prompt: task.preprocessing_captioning_prompt },
        },
        config,
        {
          signal: ctx.signal,
          onProgress: async ({ stage, processed, total }) => {
            progress = monotonic(progress, preprocessProgress(stage, processed, total));
            await ctx.update({ preprocessing_stage: stage, processed_files_count: processed, total_files_count: total, progress });
          },
        },
        options,
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
      if (err instanceof PreprocessError) throw new JobFailure(err.message);
      throw err;
    }
  };
}
