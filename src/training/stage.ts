import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { StageFailure, type StageContext, type StageHandler } from '../engine/stages.js';
import type { TrainingTaskRow } from '../store/db.js';
import type { TaskStore } from '../store/tasks.js';
import type { ProgressAnnouncer } from '../webhooks/outbox.js';
import type { TrainerEvent } from './events.js';
import { EtaEstimator, monotonic, trainingProgress } from './progress.js';
import { taskPaths, trainerEnv, trainerSpec } from './spec.js';
import { supervise } from './supervisor.js';
import { TaskEventLog } from './task-events.js';

/** The row keeps the last 64 KiB of the log; the whole log stays on disk. */
export const LOG_TAIL_BYTES = 64 * 1024;
/** Progress reaches the database at most this often; the events file gets every step. */
const WRITE_INTERVAL_MS = 1000;
/** Cancel is SIGTERM; a trainer that has not stopped at a step boundary by then is killed. */
export const CANCEL_GRACE_MS = 8000;

export interface TrainingStageDeps {
  config: Config;
  tasks: TaskStore;
  announcer: ProgressAnnouncer;
}

/** What a trainer's error event means to the person who asked for the training. */
function failureMessage(event: Extract<TrainerEvent, { type: 'error' }>): string {
  if (event.kind === 'numerics') return `Training diverged: ${event.message}`;
  if (event.kind === 'oom') {
    return `CUDA out of memory while training (${event.where || 'trainer'}): ${event.message}. Try a smaller batch_size or rank, lower resolution, or a GPU with more memory.`;
  }
  return `Trainer ${event.kind} error${event.where ? ` at ${event.where}` : ''}: ${event.message}`;
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
export function trainingStage(deps: TrainingStageDeps): StageHandler {
  return async (ctx: StageContext) => {
    const { task } = ctx;
    const paths = taskPaths(task.training_folder);
    fs.mkdirSync(paths.logs, { recursive: true });
    const spec = trainerSpec(task, deps.config, ctx.slot);
    fs.writeFileSync(paths.spec, JSON.stringify(spec, null, 2));
    const events = new TaskEventLog(paths.events);
    const tail = new LogTail();
    const samples = spec.sample_prompts.length;
    const eta = new EtaEstimator({ totalSteps: task.steps, sampleEvery: task.sample_every, saveEvery: task.save_every, samplesPerRound: samples });
    let progress = task.progress;
    let current: Partial<TrainingTaskRow> = {};
    let lastWrite = 0;
    let lastStepAt = 0;
    let weightsPath: string | null = null;

    const flush = async (force = false) => {
      if (!force && Date.now() - lastWrite < WRITE_INTERVAL_MS) return;
      lastWrite = Date.now();
      const row = await ctx.update({ ...current, logs: tail.value() });
      if (row?.status === 'TRAINING') await deps.announcer.maybeAnnounce(deps.tasks.db, row);
    };

    const onEvent = async (event: TrainerEvent) => {
      events.append(event);
      switch (event.type) {
        case 'started':
          current = { ...current, total_steps: event.steps, current_step: event.start_step };
          tail.push(
            `[kiln] training ${event.model} on ${event.device} (${event.dtype}, ${event.optimizer ?? 'optimizer ?'}, attention ${event.attention?.join('/') ?? '?'}), ${event.trainable_parameters} trainable parameters`,
          );
          await flush(true);
          break;
        case 'step': {
          // A gap well beyond a step's time was spent sampling or saving: learn its cost.
          const now = Date.now();
          if (lastStepAt && event.seconds_per_step > 0) {
            const gap = (now - lastStepAt) / 1000 - event.seconds_per_step;
            if (gap > event.seconds_per_step * 3) eta.recordSampleRound(gap);
          }
          lastStepAt = now;
          eta.recordStep(event.seconds_per_step);
          progress = monotonic(progress, trainingProgress(event.step, event.total));
          current = { ...current, current_step: event.step, total_steps: event.total, progress, eta_seconds: eta.estimate(event.step) };
          await flush(event.step === event.total);
          break;
        }
        case 'skipped_step':
          tail.push(`[kiln] warning: ${event.message}`);
          break;
        case 'checkpoint':
          tail.push(`[kiln] checkpoint at step ${event.step}: ${path.relative(paths.root, event.path)}`);
          break;
        case 'sample':
          tail.push(`[kiln] sample at step ${event.step}: ${path.relative(paths.root, event.path)}`);
          break;
        case 'completed':
          weightsPath = event.weights_path;
          break;
        case 'error':
          tail.push(`[kiln] ${failureMessage(event)}`);
          break;
        default:
          break;
      }
    };

    const result = await supervise({
      python: deps.config.python,
      args: ['-m', 'kiln_trainer', 'train', '--spec', paths.spec],
      env: trainerEnv(deps.config, ctx.slot),
      logFile: paths.trainerLog,
      signal: ctx.signal,
      graceMs: CANCEL_GRACE_MS,
      stallMs: deps.config.trainerStallSeconds * 1000,
      onEvent,
      onLogLine: (line) => {
        tail.push(line);
        events.append({ type: 'log', message: line });
      },
      onSpawn: (pid) => {
        events.append({ type: 'log', message: `[kiln] trainer started, pid ${pid}` });
        fs.writeFileSync(path.join(paths.logs, 'trainer.pid'), String(pid));
      },
    });
    await flush(true).catch(() => undefined);
    await events.close();
    if (ctx.signal.aborted) return {};
    const { outcome } = result;
    if (result.stalled) {
      throw new StageFailure(`The trainer went silent for ${deps.config.trainerStallSeconds} s (KILN_TRAINER_STALL_SECONDS) and was killed.`);
    }
    if (outcome?.type === 'error') throw new StageFailure(failureMessage(outcome));
    if (outcome?.type === 'completed' && result.exitCode === 0 && weightsPath) {
      return { set: { local_model_path: weightsPath, current_step: outcome.steps, eta_seconds: null, logs: tail.value() } };
    }
    const how = result.exitSignal ? `was killed by ${result.exitSignal}` : `exited with code ${result.exitCode}`;
    const last = result.stderrTail.slice(-5).join(' | ');
    throw new StageFailure(`The trainer ${how} before finishing${outcome?.type === 'cancelled' ? ' (it stopped on a signal it did not get from Kiln)' : ''}.${last ? ` Last log lines: ${last}` : ''}`);
  };
}
