import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { openStore, type Store } from '../../src/store/db.js';
import { startFleet, type Fleet } from '../helpers/fleet.js';
import { isAlive, mintToken, until, type KilnProcess } from '../helpers/processes.js';
import { api, makePhotos, type Target } from './scenario.js';

// Fleet mode on Postgres with real processes: one API, two workers, four tasks. One worker
// is SIGKILLed mid-stage; its task must finish on the other worker as attempt 2, and no
// stage may ever run on two workers at once.
describe('fleet failover (Postgres, 1 API + 2 workers)', { timeout: 600_000 }, () => {
  let fleet: Fleet;
  let workers: KilnProcess[];
  let store: Store;
  let target: Target;
  before(async () => {
    // The lease outlives the trainer's own 5 s stop after its supervisor dies.
    fleet = await startFleet({ workers: 2, env: { KILN_LEASE_SECONDS: '8', KILN_MAX_RUNNING_PER_TENANT: '0' } });
    workers = fleet.workers;
    store = openStore({ databaseUrl: fleet.databaseUrl, dataDir: fleet.dataDir });
    target = { baseUrl: fleet.baseUrl, token: await mintToken('fleet'), dataDir: fleet.dataDir };
  });
  after(async () => {
    await store.close();
    await fleet.stop();
  });

  test('four tasks complete; the killed worker’s task resumes elsewhere as attempt 2', async () => {
    const client = api(target);
    const refs = await client.upload(await makePhotos(3, 7));
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await client.json<TrainingTask>('POST', '/api/v1/training/', {
        trigger_word: `FLEET${i}`,
        base_model_path: 'builtin:tiny-flux',
        steps: 80,
        save_every: 20,
        sample_every: 1000,
        source_images: refs,
      });
      assert.equal(res.status, 201);
      ids.push(res.body.id);
    }

    // Catch a training stage in flight, with its trainer running, and kill its worker outright.
    const victim = await until(
      async () =>
        store.db.selectFrom('training_tasks').select(['id', 'lease_owner', 'current_step']).where('status', '=', 'TRAINING').where('current_step', '>', 0).executeTakeFirst(),
      'a training stage with steps',
      240_000,
      50,
    );
    const killedWorker = workers.find((w) => victim.lease_owner!.includes(`:${w.child.pid}:`))!;
    assert.ok(killedWorker, `worker of ${victim.lease_owner}`);
    const trainerPid = Number(fs.readFileSync(path.join(target.dataDir, 'tasks', victim.id, 'logs', 'trainer.pid'), 'utf8'));
    await killedWorker.stop('SIGKILL');
    const orphanGone = await until(async () => !isAlive(trainerPid) && Date.now(), 'the orphaned trainer to stop by itself', 15_000, 50);

    const finals = await until(
      async () => {
        const rows = await store.db.selectFrom('training_tasks').selectAll().where('id', 'in', ids).execute();
        return rows.every((r) => ['COMPLETED', 'FAILED', 'CANCELLED'].includes(r.status)) && rows;
      },
      'all four tasks to finish',
      420_000,
      500,
    );
    for (const row of finals) assert.equal(row.status, 'COMPLETED', `${row.id}: ${row.error_message}`);
    const victimRow = finals.find((r) => r.id === victim.id)!;
    assert.equal(victimRow.attempt, 2, 'the killed stage ran again as attempt 2');
    assert.equal(victimRow.celery_training_task_id, `${victim.id}:train:2`);

    const runs = await store.db.selectFrom('stage_runs').selectAll().where('task_id', 'in', ids).orderBy('task_id').orderBy('started_at').execute();
    const victimRuns = runs.filter((r) => r.task_id === victim.id && r.stage === 'train');
    assert.equal(victimRuns.length, 2);
    assert.equal(victimRuns[0].worker_id, victim.lease_owner);
    assert.notEqual(victimRuns[1].worker_id, victim.lease_owner, 'resumed on the other worker');
    assert.equal(victimRuns[1].outcome, 'completed');
    assert.ok(Date.parse(victimRuns[1].started_at) > orphanGone, 'the new attempt started only after the old trainer was gone');
    // No stage of any task ever ran on two workers at once.
    for (const id of ids) {
      for (const stage of ['preprocess', 'train']) {
        const own = runs.filter((r) => r.task_id === id && r.stage === stage);
        for (let i = 1; i < own.length; i++) {
          assert.ok(own[i - 1].ended_at, `${id} ${stage} run ${i - 1} closed`);
          assert.ok(own[i - 1].ended_at! <= own[i].started_at, `${id} ${stage}: runs ${i - 1} and ${i} overlap`);
        }
      }
    }
    // The resumed run picked up from a checkpoint rather than from scratch.
    const log = fs.readFileSync(path.join(target.dataDir, 'tasks', victim.id, 'logs', 'events.jsonl'), 'utf8');
    const starts = log
      .split('\n')
      .filter((l) => l.includes('"type":"started"'))
      .map((l) => (JSON.parse(l) as { start_step: number }).start_step);
    assert.equal(starts.length, 2);
    assert.equal(starts[0], 0);
  });

  test('SIGTERM on a worker checkpoints, gives the stage back, and the next worker resumes it', async () => {
    const client = api(target);
    const refs = await client.upload(await makePhotos(2, 11));
    const created = await client.json<TrainingTask>('POST', '/api/v1/training/', {
      trigger_word: 'DRAIN',
      base_model_path: 'builtin:tiny-flux',
      steps: 5000,
      save_every: 5000,
      source_images: refs,
    });
    const id = created.body.id;
    const row = await until(
      async () => store.db.selectFrom('training_tasks').select(['lease_owner', 'current_step']).where('id', '=', id).where('current_step', '>', 5).executeTakeFirst(),
      'training steps',
      180_000,
      100,
    );
    const holder = workers.find((w) => row.lease_owner!.includes(`:${w.child.pid}:`))!;
    assert.equal(await holder.stop('SIGTERM'), 0, 'the worker exits cleanly');
    const released = await store.db.selectFrom('training_tasks').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    assert.equal(released.status, 'QUEUED');
    assert.equal(released.lease_owner, null);
    const checkpoints = fs.readdirSync(path.join(target.dataDir, 'tasks', id, 'checkpoints'));
    assert.equal(checkpoints.length, 1, 'the trainer saved where it stopped');
    const savedAt = Number(checkpoints[0].replace('step_', ''));

    fleet.startWorker();
    const resumed = await until(
      async () => {
        const log = fs.readFileSync(path.join(target.dataDir, 'tasks', id, 'logs', 'events.jsonl'), 'utf8');
        const starts = log
          .split('\n')
          .filter((l) => l.includes('"type":"started"'))
          .map((l) => (JSON.parse(l) as { start_step: number }).start_step);
        return starts.length === 2 && starts;
      },
      'the stage to resume on a new worker',
      120_000,
      200,
    );
    assert.equal(resumed[1], savedAt, 'training resumed from the checkpoint it stopped at');
    assert.equal((await client.json<TrainingTask>('POST', `/api/v1/training/${id}/cancel`)).body.status, 'CANCELLED');
  });
});
