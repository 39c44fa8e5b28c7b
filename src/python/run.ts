import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import type { Slot } from '../engine/job-kind.js';
import { childEnv } from './child-env.js';
import type { TrainerEvent } from './events.js';
import { supervise, type SuperviseResult } from './supervisor.js';

/** Cancel is SIGTERM; a process that has not stopped at a safe point by then is killed. */
export const CANCEL_GRACE_MS = 8000;

export type PythonCommand = 'train' | 'generate' | 'caption';

/** What each command is called in a message to the person who asked for it. */
const DOER: Record<PythonCommand, string> = { train: 'trainer', generate: 'generator', caption: 'captioning model' };
/** How an error event's message starts; captioning failures are worded by the caption step. */
const ERROR_PREFIX: Record<PythonCommand, string> = { train: 'Trainer ', generate: 'Generation ', caption: '' };

export interface PythonRun {
  config: Config;
  command: PythonCommand;
  /** The JSON spec (kiln_trainer/spec.py); written to `specFile` before the start. */
  spec: object;
  specFile: string;
  /** stderr, the human log, is appended here. */
  logFile: string;
  /** The slot it runs on: a GPU slot sees only its GPU, any other sees none. */
  slot: Slot;
  signal: AbortSignal;
  onEvent?(event: TrainerEvent): void | Promise<void>;
  onLogLine?: (line: string) => void;
  onSpawn?: (pid: number) => void;
}

export interface PythonResult extends SuperviseResult {
  /** Why it did not finish, in words for the user; null when it completed. */
  failure: string | null;
}

/** An `error` event in words for the person who asked for the work. */
export function errorMessage(command: PythonCommand, event: Extract<TrainerEvent, { type: 'error' }>): string {
  const where = event.where ? ` at ${event.where}` : '';
  if (event.kind === 'numerics') return `Training diverged: ${event.message}`;
  if (event.kind === 'memory') return `The training does not fit this GPU's memory: ${event.message}`;
  if (event.kind === 'oom') {
    const advice =
      command === 'train' ? 'Try a smaller batch_size or rank, a lower resolution, or a GPU with more memory.' : 'Try fewer or smaller images, or a GPU with more memory.';
    return `The GPU ran out of memory in the ${DOER[command]}: ${event.message.replace(/\.$/, '')}. ${advice}`;
  }
  if (event.kind === 'disk') {
    const retry = command === 'generate' ? 'retry the generation' : 'retry the task';
    const checkpoints = command === 'train' ? '; a lower max_step_saves_to_keep keeps fewer checkpoints' : '';
    return `The ${DOER[command]} could not write to the data dir's disk: ${event.message.replace(/\.$/, '')}. Free space on it (deleting finished tasks frees theirs${checkpoints}), then ${retry}.`;
  }
  return `${ERROR_PREFIX[command]}${event.kind} error${where}: ${event.message}`;
}

/**
 * Runs `python -m kiln_trainer <command> --spec <file>` to its end: writes the spec, starts
 * the process on its slot, forwards its events, stops it on abort (SIGTERM, then SIGKILL
 * after CANCEL_GRACE_MS) and says in `failure` why it did not complete. Training, captioning
 * and generation all start their Python this way.
 */
export async function runPython(run: PythonRun): Promise<PythonResult> {
  const { config, command } = run;
  fs.mkdirSync(path.dirname(run.specFile), { recursive: true });
  fs.writeFileSync(run.specFile, JSON.stringify(run.spec, null, 2));
  let error: Extract<TrainerEvent, { type: 'error' }> | null = null;
  const result = await supervise({
    python: config.python,
    args: ['-m', 'kiln_trainer', command, '--spec', run.specFile],
    env: childEnv(config, run.slot),
    logFile: run.logFile,
    signal: run.signal,
    graceMs: CANCEL_GRACE_MS,
    stallMs: config.trainerStallSeconds * 1000,
    onEvent: (event) => {
      if (event.type === 'error') error = event;
      return run.onEvent?.(event);
    },
    onLogLine: run.onLogLine,
    onSpawn: run.onSpawn,
  });
  return { ...result, failure: failureOf(command, result, error, config) };
}

function failureOf(command: PythonCommand, result: SuperviseResult, error: Extract<TrainerEvent, { type: 'error' }> | null, config: Config): string | null {
  const { outcome } = result;
  if (result.stalled) return `The ${DOER[command]} went silent for ${config.trainerStallSeconds} s (KILN_TRAINER_STALL_SECONDS) and was killed.`;
  if (outcome?.type === 'error' || error) return errorMessage(command, (outcome?.type === 'error' ? outcome : error)!);
  if (outcome?.type === 'completed' && result.exitCode === 0) return null;
  const how = result.exitSignal ? `was killed by ${result.exitSignal}` : `exited with code ${result.exitCode}`;
  const last = result.stderrTail.slice(-5).join(' | ');
  const stray = outcome?.type === 'cancelled' ? ' (it stopped on a signal it did not get from Kiln)' : '';
  return `The ${DOER[command]} ${how} before finishing${stray}.${last ? ` Last log lines: ${last}` : ''}`;
}
