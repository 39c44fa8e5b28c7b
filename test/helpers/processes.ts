import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SignJWT } from 'jose';
import { REPO_ROOT } from '../../src/config.js';

export const TEST_SECRET = 'process-test-secret-process-test-secret';

/** A real `kiln` process (serve or worker) with its output kept in a file for post-mortems. */
export interface KilnProcess {
  child: ChildProcess;
  logFile: string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** `wrap` runs the process under another command, which ends by exec-ing the rest of its arguments (unshare, say). */
export function startKiln(args: string[], env: Record<string, string>, logFile: string, opts: { wrap?: string[] } = {}): KilnProcess {
  const out = fs.openSync(logFile, 'a');
  const command = [...(opts.wrap ?? []), process.execPath, '--import', 'tsx', path.join(REPO_ROOT, 'src/cli/main.ts'), ...args];
  const child = spawn(command[0], command.slice(1), {
    cwd: REPO_ROOT,
    env: { ...process.env, KILN_JWT_SECRET: TEST_SECRET, KILN_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', out, out],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    logFile,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export async function mintToken(tenant: string, admin = false, claims: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ tenant_id: tenant, ...(admin ? { scope: 'training:admin' } : {}), ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(TEST_SECRET));
}

export async function waitForHttp(url: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not come up in ${timeoutMs} ms`);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function until<T>(probe: () => Promise<T | undefined | false | null>, what: string, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = await probe();
    if (v) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
