import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { REPO_ROOT, testConfig } from '../../src/config.js';
import { openRuntime, type Runtime } from '../../src/runtime.js';
import { makePhotos } from '../e2e/scenario.js';
import { tmpDir } from '../helpers/harness.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI as a user would, against `server` with `token`, from `cwd`. */
export function runKiln(args: string[], opts: { server: string; token?: string; cwd?: string }): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, KILN_SERVER: opts.server, KILN_TOKEN: opts.token ?? '' };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli/main.ts'), ...args],
      { cwd: opts.cwd ?? REPO_ROOT, env, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A folder of `count` distinct PNGs, plus `extra` files named as given. */
export async function photoFolder(count: number, extra: Record<string, string | Buffer> = {}): Promise<string> {
  const dir = tmpDir('kiln-cli-photos-');
  (await makePhotos(count)).forEach((png, i) => fs.writeFileSync(path.join(dir, `photo-${i}.png`), png));
  for (const [name, bytes] of Object.entries(extra)) fs.writeFileSync(path.join(dir, name), bytes);
  return dir;
}

/** The API listening on a real socket, without a worker: tasks stay PENDING. */
export interface ApiServer {
  url: string;
  runtime: Runtime;
  app: FastifyInstance;
  token(tenant?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startApiOnly(): Promise<ApiServer> {
  const dataDir = tmpDir('kiln-cli-');
  const runtime = await openRuntime(testConfig(dataDir));
  const app = await buildApp(runtime, { logger: false });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    runtime,
    app,
    token: (tenant = 'cli') => runtime.verifier.mint!({ tenantId: tenant }),
    async close() {
      await app.close();
      await runtime.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
