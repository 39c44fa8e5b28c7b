import { spawn } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';
import { parseEvent, type TrainerEvent } from './events.js';

export interface SuperviseOptions {
  python: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** stderr (the human log) is appended here as it arrives. */
  logFile: string;
  /** Aborting asks the trainer to stop: SIGTERM, then SIGKILL after `graceMs`. */
  signal: AbortSignal;
  graceMs: number;
  /** A trainer silent (no stdout or stderr) this long is killed. */
  stallMs: number;
  onEvent(event: TrainerEvent): void | Promise<void>;
  onLogLine?(line: string): void;
  onSpawn?(pid: number): void;
}

export interface SuperviseResult {
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  /** The last of completed / cancelled / error the trainer said, if any. */
  outcome: Extract<TrainerEvent, { type: 'completed' | 'cancelled' | 'error' }> | null;
  stalled: boolean;
  /** The last lines of stderr, for an error message when the trainer died without saying why. */
  stderrTail: string[];
}

/**
 * Runs one trainer process to its end. stdin stays an open pipe: if this process dies, the
 * trainer sees EOF and stops by itself, so no orphan keeps writing into the task folder.
 * Resolves only after the process has exited, which is what frees the slot.
 */
export function supervise(opts: SuperviseOptions): Promise<SuperviseResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(opts.python, opts.args, { env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const log = fs.createWriteStream(opts.logFile, { flags: 'a' });
    const stderrTail: string[] = [];
    let outcome: SuperviseResult['outcome'] = null;
    let stalled = false;
    let killTimer: NodeJS.Timeout | null = null;
    let pending: Promise<void> = Promise.resolve();

    let stallTimer = setTimeout(onStall, opts.stallMs);
    function touch() {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(onStall, opts.stallMs);
    }
    function onStall() {
      stalled = true;
      log.write(`[kiln] trainer silent for ${Math.round(opts.stallMs / 1000)} s; killing it\n`);
      child.kill('SIGKILL');
    }
    const stop = () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), opts.graceMs);
    };

    child.on('error', (err) => {
      clearTimeout(stallTimer);
      reject(new Error(`could not start the trainer (${opts.python}): ${err.message}`));
    });
    child.on('spawn', () => {
      if (child.pid) opts.onSpawn?.(child.pid);
      if (opts.signal.aborted) stop();
      else opts.signal.addEventListener('abort', stop, { once: true });
    });
    child.stdin.on('error', () => {}); // EPIPE once the trainer has exited

    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      touch();
      const event = parseEvent(line);
      if (!event) {
        log.write(`[stdout] ${line}\n`);
        return;
      }
      if (event.type === 'completed' || event.type === 'cancelled' || event.type === 'error') outcome = event;
      // Events are handled one at a time, in order, even when a handler awaits the database.
      pending = pending.then(() => opts.onEvent(event)).catch((err) => void log.write(`[kiln] event handler failed: ${err}\n`));
    });
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      touch();
      log.write(line + '\n');
      stderrTail.push(line);
      if (stderrTail.length > 40) stderrTail.shift();
      opts.onLogLine?.(line);
    });

    child.on('close', (exitCode, exitSignal) => {
      clearTimeout(stallTimer);
      if (killTimer) clearTimeout(killTimer);
      opts.signal.removeEventListener('abort', stop);
      // After the event handlers still running (`pending` never rejects: each failure is caught and logged).
      void pending.then(() => log.end(() => resolve({ exitCode, exitSignal, outcome, stalled, stderrTail })));
    });
  });
}
