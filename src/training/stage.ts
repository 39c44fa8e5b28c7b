import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { taskPaths } from '../domain/task-folder.js';
import { JobFailure, type JobHandler } from '../engine/job-kind.js';
import type { TrainerEvent } from '../python/events.js';
import { errorMessage, runPython } from '../python/run.js';
import type { TrainingTaskRow } from '../store/db.js';
import type { TaskStore } from '../store/tasks.js';
import type { ProgressAnnouncer } from '../webhooks/outbox.js';
import { EtaEstimator, GapMeter, monotonic, trainingProgress } from '../domain/progress.js';
import { trainerSpec } from './spec.js';
import { EventLog } from '../python/event-log.js';
import { linkOrCopy } from '../preprocess/fs-util.js';

/** The row keeps the last 64 KiB of the log; the whole log stays on disk. */
export const LOG_TAIL_BYTES = 64 * 1024;
/** Progress reaches the database at most this often; the events file gets every step. */
const WRITE_INTERVAL_MS = 1000;

export interface TrainingStageDeps {
  config: Config;
  tasks: TaskStore;
  announcer: ProgressAnnouncer;
}

class LogTail {
  private text = '';
  push(line: string): void {
    this.text += line + '\n';
    if (this.text.length > LOG_TAIL_BYTES * 2) this.text = this.text.slice(-LOG_TAIL_BYTES);
  }
  value(): string {
    return this.text.length > LOG_TAIL_BYTES ? this.text.slice(-LOG_TAIL_BYTES) : this.text;
  }
}

/**
 * The training stage: runs `python -m kiln_trainer train` for the task and turns its events
 * into the task's step, progress, ETA, logs and artifacts. Returns once the process is gone.
 */
export function trainingStage(deps: TrainingStageDeps): JobHandler<TrainingTaskRow> {
  return async (ctx) => {
    const task = ctx.row;
    const paths = taskPaths(task.training_folder);
    fs.mkdirSync(paths.logs, { recursive: true });
    const spec = trainerSpec(task, ctx.slot, task.init_lora_task_id ? await initLoraFile(deps.tasks, task) : undefined);
    const events = new EventLog(paths.events);
    const tail = new LogTail();
    const eta = new EtaEstimator({ totalSteps: task.steps, sampleEvery: task.sample_every, saveEvery: task.save_every, samplesPerRound: spec.sample_prompts.length });
    const gaps = new GapMeter(eta);
    let progress = task.progress;
    let current: Partial<TrainingTaskRow> = {};
    let lastWrite = 0;
    let weightsPath: string | null = null;

    const flush = async (force = false) => {
      if (!force && Date.now() - lastWrite < WRITE_INTERVAL_MS) return;
      lastWrite = Date.now();
      const row = await ctx.update({ ...current, logs: tail.value() });
      // A progress webhook missed in an outage is not worth stopping for: the next step announces again.
      if (row?.status === 'TRAINING') await deps.announcer.maybeAnnounce(deps.tasks.db, row).catch((err: unknown) => ctx.log.warn({ err }, 'progress webhook not queued'));
    };

    const onEvent = async (event: TrainerEvent) => {
      events.append(event);
      switch (event.type) {
        case 'started':
          current = { ...current, total_steps: event.steps, current_step: event.start_step };
          tail.push(
            `[kiln] training ${event.model} on ${event.device} (${event.dtype}, ${event.optimizer ?? 'optimizer ?'}, attention ${event.attention?.join('/') ?? '?'}), ${event.trainable_parameters} trainable parameters`,
          );
          if (event.memory_plan) tail.push(`[kiln] memory plan: ${event.memory_plan.reason}`);
          if (event.images_per_resolution) tail.push(`[kiln] ${datasetSummary(event.images ?? 0, event.images_per_resolution)}`);
          await flush(true);
          break;
        case 'step':
          gaps.step(event.seconds_per_step);
          eta.recordStep(event.seconds_per_step);
          progress = monotonic(progress, trainingProgress(event.step, event.total));
          current = { ...current, current_step: event.step, total_steps: event.total, progress, eta_seconds: eta.estimate(event.step) };
          await flush(event.step === event.total);
          break;
        case 'skipped_step':
          tail.push(`[kiln] warning: ${event.message}`);
          break;
        case 'checkpoint':
          gaps.checkpoint();
          tail.push(`[kiln] checkpoint at step ${event.step}: ${path.relative(paths.root, event.path)}`);
          break;
        case 'sample':
          gaps.sample(event.seconds);
          tail.push(`[kiln] sample at step ${event.step}: ${path.relative(paths.root, event.path)}`);
          break;
        case 'completed':
          weightsPath = event.weights_path;
          break;
        case 'error':
          tail.push(`[kiln] ${errorMessage('train', event)}`);
          break;
        default:
          break;
      }
    };

    const result = await runPython({
      config: deps.config,
      command: 'train',
      spec,
      specFile: paths.spec,
      logFile: paths.trainerLog,
      slot: ctx.slot,
      signal: ctx.signal,
      onEvent,
      onLogLine: (line) => {
        tail.push(line);
        events.append({ type: 'log', message: line });
      },
      onSpawn: (pid) => {
        events.append({ type: 'log', message: `[kiln] trainer started, pid ${pid}` });
        fs.writeFileSync(paths.trainerPid, String(pid));
      },
    });
    await flush(true).catch(() => undefined);
    await events.close();
    deps.announcer.forget(task.id);
    if (ctx.signal.aborted) return {};
    if (result.failure || !weightsPath || result.outcome?.type !== 'completed') {
      throw new JobFailure(result.failure ?? 'The trainer finished without reporting its weights file.');
    }
    return { set: { local_model_path: weightsPath, current_step: result.outcome.steps, eta_seconds: null, logs: tail.value() } };
  };
}

/**
 * The LoRA a task continues from, linked into its own folder the first time it trains, so a
 * retry still has it after the other task is deleted (deleting it is refused until then).
 */
async function initLoraFile(tasks: TaskStore, task: TrainingTaskRow): Promise<string> {
  const own = taskPaths(task.training_folder).initLora;
  if (fs.existsSync(own)) return own;
  const source = await tasks.get(task.init_lora_task_id!);
  if (!source?.local_model_path || !fs.existsSync(source.local_model_path)) {
    throw new JobFailure(`The LoRA of training task ${task.init_lora_task_id} that this task continues from is gone: that task was deleted`);
  }
  await fs.promises.mkdir(path.dirname(own), { recursive: true });
  await linkOrCopy(source.local_model_path, own);
  return own;
}

/** "dataset: 12 images, 12 at 512 px, 9 at 768 px, 4 at 1024 px; …": how many photos each size really trains on. */
function datasetSummary(images: number, perResolution: Record<string, number>): string {
  const counts = Object.entries(perResolution).map(([px, n]) => `${n} at ${px} px`);
  const leftOut = Object.values(perResolution).some((n) => n < images);
  return `dataset: ${images} images, ${counts.join(', ')}${leftOut ? "; an image skips each size that would enlarge it past kiln_trainer/data.py's limit, and the log names it" : ''}`;
}
