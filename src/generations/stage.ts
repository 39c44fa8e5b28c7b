import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { JobFailure, type JobHandler } from '../engine/job-kind.js';
import { EventLog } from '../python/event-log.js';
import { runPython } from '../python/run.js';
import type { GenerationRow } from '../store/db.js';
import { generationPaths, type GenerationRequest } from './request.js';

/** A generation: `python -m kiln_trainer generate` on an accelerator slot; the images it wrote become the row's. */
export function generationStage(config: Config): JobHandler<GenerationRow> {
  return async (ctx) => {
    const row = ctx.row;
    const request = JSON.parse(row.request) as GenerationRequest;
    const paths = generationPaths(config.dataDir, row.id);
    // The API refuses to delete a task whose LoRA a waiting generation names, but a generation
    // created during that delete, or retried after it, can still name one that is gone.
    const missing = request.loras.find((l) => !fs.existsSync(l.weights_path));
    if (missing) throw new JobFailure(`the LoRA of training task ${missing.training_task_id} is gone (${missing.weights_path} does not exist): the task was deleted`);
    // A rerun (rescue, retry) starts from an empty folder, so the row never lists a stale image.
    fs.rmSync(paths.images, { recursive: true, force: true });
    fs.mkdirSync(paths.images, { recursive: true });
    const images: string[] = [];
    const events = new EventLog(paths.events);
    events.append({ type: 'log', message: `[kiln] attempt ${row.attempt} on ${ctx.slot.kind === 'gpu' ? `GPU ${ctx.slot.device}` : 'the CPU'}` });
    const result = await runPython({
      config,
      command: 'generate',
      spec: {
        version: 1,
        base_model_path: row.base_model_path,
        loras: request.loras.map((l) => ({ path: l.weights_path, scale: l.scale })),
        prompts: [request.prompt],
        ...(request.width ? { width: request.width } : {}),
        ...(request.height ? { height: request.height } : {}),
        ...(request.steps ? { steps: request.steps } : {}),
        guidance_scale: request.guidance_scale,
        seed: request.seed,
        num_images: request.num_images,
        output_dir: paths.images,
        device: ctx.slot.kind === 'gpu' ? 'cuda' : 'cpu',
      },
      specFile: paths.spec,
      logFile: paths.log,
      slot: ctx.slot,
      signal: ctx.signal,
      onEvent: (e) => {
        events.append(e.type === 'image' ? { ...e, path: path.basename(e.path) } : e);
        if (e.type === 'image') images.push(path.basename(e.path));
      },
      onLogLine: (line) => events.append({ type: 'log', message: line }),
    });
    await events.close();
    if (ctx.signal.aborted) return {};
    if (result.failure) throw new JobFailure(result.failure);
    return { set: { images: JSON.stringify(images) } };
  };
}
