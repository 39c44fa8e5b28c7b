import path from 'node:path';
import type { Dialect } from '../../src/store/db.js';
import { createPgSchema, tmpDir, TEST_PG_URL } from './harness.js';
import { startKiln, waitForHttp, type KilnProcess } from './processes.js';

/**
 * Fleet mode as deployed: one `kiln serve --no-worker` and N `kiln worker`s sharing a data dir
 * and a database: a Postgres schema by default, or the data dir's SQLite file (several
 * processes on one machine).
 */
export interface Fleet {
  baseUrl: string;
  dataDir: string;
  databaseUrl: string;
  api: KilnProcess;
  workers: KilnProcess[];
  /** Starts one more worker against the same database and data dir. */
  startWorker(): KilnProcess;
  stop(): Promise<void>;
}

/** `pgUrl` reaches the same Postgres another way (through a proxy that a test cuts, say). */
export async function startFleet(opts: { workers: number; env?: Record<string, string>; dialect?: Dialect; pgUrl?: string }): Promise<Fleet> {
  const schema = opts.dialect === 'sqlite' ? null : await createPgSchema();
  const dataDir = tmpDir('kiln-fleet-');
  const port = 18000 + Math.floor(Math.random() * 4000);
  const databaseUrl = schema ? `${opts.pgUrl ?? TEST_PG_URL}?options=-c%20search_path%3D${schema.name}` : '';
  const env = { KILN_DATA_DIR: dataDir, KILN_DATABASE_URL: databaseUrl, KILN_PORT: String(port), ...opts.env };
  const api = startKiln(['serve', '--no-worker'], env, path.join(dataDir, 'api.log'));
  await waitForHttp(`http://127.0.0.1:${port}/readyz`);
  const workers: KilnProcess[] = [];
  const startWorker = () => {
    const worker = startKiln(['worker', '--cpu-slots', '1', '--preprocess', '1'], env, path.join(dataDir, `worker-${workers.length}.log`));
    workers.push(worker);
    return worker;
  };
  for (let i = 0; i < opts.workers; i++) startWorker();
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    dataDir,
    databaseUrl,
    api,
    workers,
    startWorker,
    async stop() {
      for (const p of [...workers, api]) await p.stop();
      await schema?.drop();
    },
  };
}
