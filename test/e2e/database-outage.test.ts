import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { openStore, type Store } from '../../src/store/db.js';
import { startFleet, type Fleet } from '../helpers/fleet.js';
import { TEST_PG_URL } from '../helpers/harness.js';
import { PgProxy } from '../helpers/pg-proxy.js';
import { mintToken, until } from '../helpers/processes.js';
import { api, makePhotos, type Target } from './scenario.js';

// Fleet mode on Postgres with real processes (an API and a worker), their database reached
// through a proxy that the test cuts: every session terminated by the server, new ones
// refused, for a while; then the database is back on the same address.

const TERMINAL = ['COMPLETED', 'FAILED', 'CANCELLED'];

interface Setup {
  fleet: Fleet;
  proxy: PgProxy;
  /** The same database, not through the proxy: what the test itself reads. */
  store: Store;
  target: Target;
}

async function setUp(leaseSeconds: number): Promise<Setup> {
  const proxy = new PgProxy();
  await proxy.start();
  // Steps of at least 60 ms: training outlasts the outage however fast or busy the CPU is.
  const fleet = await startFleet({ workers: 1, pgUrl: proxy.url, env: { KILN_LEASE_SECONDS: String(leaseSeconds), KILN_FAULT_STEP_SECONDS: '0.06' } });
  const store = openStore({ databaseUrl: fleet.databaseUrl.replace(proxy.url, TEST_PG_URL), dataDir: fleet.dataDir });
  return { fleet, proxy, store, target: { baseUrl: fleet.baseUrl, token: await mintToken('outage'), dataDir: fleet.dataDir } };
}

async function tearDown(s: Setup | undefined): Promise<void> {
  if (!s) return;
  await s.store.close();
  await s.fleet.stop();
  await s.proxy.stop();
}

async function startTraining(s: Setup, steps: number, saveEvery: number): Promise<{ id: string; trainerPid: number }> {
  const client = api(s.target);
  const refs = await client.upload(await makePhotos(2, 5));
  const created = await client.json<TrainingTask>('POST', '/api/v1/training/', {
    trigger_word: 'OUTAGE',
    base_model_path: 'builtin:tiny-flux',
    steps,
    save_every: saveEvery,
    sample_every: 100_000,
    source_images: refs,
  });
  assert.equal(created.status, 201);
  const id = created.body.id;
  await until(
    async () => s.store.db.selectFrom('training_tasks').select('id').where('id', '=', id).where('status', '=', 'TRAINING').where('current_step', '>', 3).executeTakeFirst(),
    'training steps',
    180_000,
    100,
  );
  const trainerPid = Number(fs.readFileSync(path.join(s.target.dataDir, 'tasks', id, 'logs', 'trainer.pid'), 'utf8'));
  return { id, trainerPid };
}

function trainerStarts(s: Setup, id: string): number[] {
  return fs
    .readFileSync(path.join(s.target.dataDir, 'tasks', id, 'logs', 'events.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"type":"started"'))
    .map((l) => (JSON.parse(l) as { start_step: number }).start_step);
}

async function finished(s: Setup, id: string) {
  return until(
    async () => {
      const row = await s.store.db.selectFrom('training_tasks').selectAll().where('id', '=', id).executeTakeFirst();
      return row && TERMINAL.includes(row.status) && row;
    },
    'the task to finish',
    240_000,
    250,
  );
}

describe('a database outage shorter than the lease (Postgres, API + worker)', { timeout: 400_000 }, () => {
  let s: Setup | undefined;
  before(async () => {
    s = await setUp(30);
  });
  after(() => tearDown(s));

  test('both processes ride it out, the API answers 503 meanwhile, and training never restarts', async () => {
    const { fleet, proxy, target } = s!;
    const { id, trainerPid } = await startTraining(s!, 160, 80);
    const client = api(target);

    const terminated = await proxy.cut();
    assert.ok(terminated >= 2, `sessions of both processes were terminated (${terminated})`);
    const cutAt = Date.now();

    assert.equal((await fetch(`${fleet.baseUrl}/healthz`)).status, 200, 'liveness does not depend on the database');
    assert.equal((await fetch(`${fleet.baseUrl}/readyz`)).status, 503, 'readiness does');
    const askedAt = Date.now();
    const res = await fetch(`${fleet.baseUrl}/api/v1/training/${id}`, { headers: { authorization: `Bearer ${target.token}` } });
    assert.equal(res.status, 503);
    assert.match(res.headers.get('retry-after') ?? '', /^\d+$/);
    assert.match(((await res.json()) as { detail: string }).detail, /database/);
    assert.ok(Date.now() - askedAt < 10_000, 'a database route answers within the connection timeout, not never');

    await new Promise((r) => setTimeout(r, Math.max(0, 5000 - (Date.now() - cutAt))));
    assert.equal(fleet.api.child.exitCode, null, 'the API process is still up');
    assert.equal(fleet.workers[0].child.exitCode, null, 'the worker process is still up');
    await proxy.restore();

    await until(async () => (await fetch(`${fleet.baseUrl}/readyz`)).status === 200, '/readyz to recover', 30_000, 200);
    const during = await client.json<TrainingTask>('GET', `/api/v1/training/${id}`);
    assert.equal(during.status, 200);

    const row = await finished(s!, id);
    assert.equal(row.status, 'COMPLETED', row.error_message ?? '');
    assert.equal(row.attempt, 1, 'the stage was never rescued or retried');
    assert.equal(row.current_step, 160);
    assert.deepEqual(trainerStarts(s!, id), [0], 'one trainer, started once from step 0');
    const runs = await s!.store.db.selectFrom('stage_runs').selectAll().where('task_id', '=', id).where('stage', '=', 'train').execute();
    assert.equal(runs.length, 1);
    assert.equal(runs[0].outcome, 'completed');
    const log = fs.readFileSync(path.join(target.dataDir, 'tasks', id, 'logs', 'events.jsonl'), 'utf8');
    assert.ok(log.includes(`trainer started, pid ${trainerPid}`));
    assert.match(row.logs, /checkpoint at step 80/, 'the log tail written through the outage kept its lines');
  });
});

describe('a database outage longer than the lease (Postgres, API + worker)', { timeout: 400_000 }, () => {
  let s: Setup | undefined;
  before(async () => {
    // Unrenewed for 4 s (half the lease, as it is shorter than the trainer's grace), the trainer is stopped.
    s = await setUp(8);
  });
  after(() => tearDown(s));

  test('the trainer stops at a checkpoint before the lease expires, and the task resumes once', async () => {
    const { fleet, proxy } = s!;
    const { id } = await startTraining(s!, 160, 5000);

    await proxy.cut();
    // No renewal can land from now on, so this is when the lease runs out.
    const { lease_expires_at: expiresAt } = await s!.store.db.selectFrom('training_tasks').select('lease_expires_at').where('id', '=', id).executeTakeFirstOrThrow();
    await new Promise((r) => setTimeout(r, 11_000));
    assert.equal(fleet.workers[0].child.exitCode, null, 'the worker process is still up');
    await proxy.restore();

    const row = await finished(s!, id);
    assert.equal(row.status, 'COMPLETED', row.error_message ?? '');
    assert.equal(row.attempt, 2, 'the stage ran again once');
    const starts = trainerStarts(s!, id);
    assert.equal(starts.length, 2);
    assert.equal(starts[0], 0);
    assert.ok(starts[1] > 0, `the second run resumed from the checkpoint the first one wrote (${starts[1]})`);

    const runs = await s!.store.db.selectFrom('stage_runs').selectAll().where('task_id', '=', id).where('stage', '=', 'train').orderBy('started_at').execute();
    assert.equal(runs.length, 2);
    assert.ok(runs[0].ended_at, 'the first run closed');
    // The first trainer stopped training at a checkpoint while its lease still held; its process then exited before the second began.
    const stopped = fs
      .readFileSync(path.join(s!.target.dataDir, 'tasks', id, 'logs', 'events.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"type":"cancelled"'))
      .map((l) => JSON.parse(l) as { time: string; step: number });
    assert.equal(stopped.length, 1);
    assert.equal(stopped[0].step, starts[1], 'it stopped at the step the second run resumed from');
    assert.ok(stopped[0].time < expiresAt!, `the trainer stopped (${stopped[0].time}) before its lease expired (${expiresAt})`);
    assert.ok(runs[0].ended_at <= runs[1].started_at, 'the runs never overlapped');
    assert.equal(runs[1].outcome, 'completed');
  });
});
