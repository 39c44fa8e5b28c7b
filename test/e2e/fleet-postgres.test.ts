import { after, before, describe, test } from 'node:test';
import path from 'node:path';
import { createPgSchema, tmpDir, TEST_PG_URL } from '../helpers/harness.js';
import { mintToken, startKiln, waitForHttp, type KilnProcess } from '../helpers/processes.js';
import { cancelDuringTraining, trainToCompletion, trainerKilledFromOutside, type Target } from './scenario.js';

// The same end-to-end scenario in fleet mode: Postgres holds the tasks, the API and a worker
// are separate processes that share only the database and the data dir.
describe('end to end, fleet (Postgres, API and worker processes)', { timeout: 600_000 }, () => {
  const procs: KilnProcess[] = [];
  let drop: () => Promise<void>;
  let target: Target;
  before(async () => {
    const schema = await createPgSchema();
    drop = schema.drop;
    const dataDir = tmpDir('kiln-fleet-e2e-');
    const port = 18000 + Math.floor(Math.random() * 2000);
    const env = {
      KILN_DATA_DIR: dataDir,
      KILN_DATABASE_URL: `${TEST_PG_URL}?options=-c%20search_path%3D${schema.name}`,
      KILN_PORT: String(port),
      KILN_LEASE_SECONDS: '10',
    };
    procs.push(startKiln(['serve', '--no-worker'], env, path.join(dataDir, 'api.log')));
    await waitForHttp(`http://127.0.0.1:${port}/readyz`);
    procs.push(startKiln(['worker', '--cpu-slots', '1', '--preprocess', '1'], env, path.join(dataDir, 'worker.log')));
    target = { baseUrl: `http://127.0.0.1:${port}`, token: await mintToken('fleet-e2e'), dataDir };
  });
  after(async () => {
    for (const p of procs) await p.stop();
    await drop();
  });

  test('train, watch, download, load in diffusers, generate', () => trainToCompletion(target));
  test('cancel during training stops the trainer within 10 s', () => cancelDuringTraining(target));
  test('a trainer killed from outside fails the task clearly', () => trainerKilledFromOutside(target));
});
