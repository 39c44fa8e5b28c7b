import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../../test/helpers/free-port.js';
import { forkTs, isMessage, nextMessage, stopChild } from '../lib/child.js';
import { REPO_ROOT } from '../lib/paths.js';
import { sleep } from '../lib/stats.js';

export type ServiceName = 'kiln' | 'baseline';

export interface RunningService {
  name: ServiceName;
  url: string;
  stop(): Promise<void>;
}

/** Where a service finds the shared store. */
export interface StoreTarget {
  dataDir: string;
  jwtSecret: string;
  /** '' for SQLite at dataDir/kiln.db, else the Postgres URL without schema. */
  pgUrl: string;
  /** The Postgres schema; pgUrlWithSchema sets it for clients that only take a URL. */
  pgSchema?: string;
  pgUrlWithSchema?: string;
}

const KILN_SERVER = path.join(REPO_ROOT, 'bench/api/kiln-server.ts');
const BASELINE_APP = path.join(REPO_ROOT, 'bench/baselines/fastapi_app.py');
const PYTHON = process.env.KILN_BENCH_PYTHON ?? path.join(REPO_ROOT, '.venv/bin/python');
const START_TIMEOUT_MS = 30_000;

export async function startKiln(target: StoreTarget): Promise<RunningService> {
  const child = forkTs(KILN_SERVER, {
    KILN_DATA_DIR: target.dataDir,
    KILN_DATABASE_URL: target.pgUrl,
    KILN_JWT_SECRET: target.jwtSecret,
    KILN_DEV_PRINT_TOKEN: '0',
    BENCH_PG_SCHEMA: target.pgSchema ?? '',
  });
  const isListening = isMessage<{ type: 'listening'; port: number }>('listening');
  try {
    const { port } = await nextMessage(child, isListening, START_TIMEOUT_MS, 'kiln server');
    return { name: 'kiln', url: `http://127.0.0.1:${port}`, stop: () => stopChild(child) };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}

async function waitForHttp(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`baseline exited with ${child.exitCode} while starting`);
    try {
      await fetch(url);
      return; // any answer (401/403 without a token) means it is serving
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`baseline did not answer ${url} within ${START_TIMEOUT_MS} ms`);
}

export async function startBaseline(target: StoreTarget): Promise<RunningService> {
  const port = await freePort();
  const databaseUrl = target.pgUrl ? target.pgUrlWithSchema! : `sqlite:///${path.join(target.dataDir, 'kiln.db')}`;
  const child = spawn(PYTHON, [BASELINE_APP, '--port', String(port)], {
    cwd: REPO_ROOT,
    env: { ...process.env, BASELINE_DATABASE_URL: databaseUrl, BASELINE_JWT_SECRET: target.jwtSecret, BASELINE_DATA_DIR: target.dataDir },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/api/v1/training/`, child);
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return { name: 'baseline', url, stop: () => stopChild(child) };
}
