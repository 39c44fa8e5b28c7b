import { fork, type ChildProcess } from 'node:child_process';
import { REPO_ROOT } from './paths.js';

/** Starts a TypeScript bench script in its own node process (own event loop, own CPU time). */
export function forkTs(script: string, env: Record<string, string> = {}): ChildProcess {
  return fork(script, [], {
    cwd: REPO_ROOT,
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
}

/** A predicate for nextMessage: an IPC message `{ type, … }` of this type. */
export function isMessage<T extends { type: string }>(type: T['type']): (m: unknown) => m is T {
  return (m): m is T => (m as { type?: unknown } | null | undefined)?.type === type;
}

/** Resolves with the first IPC message the predicate accepts; rejects on exit or timeout. */
export function nextMessage<T>(child: ChildProcess, accept: (m: unknown) => m is T, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${what}: no answer in ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (m: unknown) => {
      if (accept(m)) done(null, m);
    };
    const onExit = (code: number | null) => done(new Error(`${what}: exited with ${code} before answering`));
    function done(err: Error | null, value?: T) {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(value as T);
    }
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/** Asks a child to stop, and kills it if it has not gone within the grace period. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
