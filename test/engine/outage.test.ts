import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import pino from 'pino';
import type { JobContext, JobHandler } from '../../src/engine/job-kind.js';
import { Worker } from '../../src/engine/worker.js';
import type { TrainingTaskRow } from '../../src/store/db.js';
import { kindsOf } from '../helpers/kinds.js';
import { openHarness, type Harness } from '../helpers/harness.js';
import { until } from '../helpers/processes.js';
import { insertTask } from '../helpers/tasks.js';

const silent = pino({ level: process.env.DEBUG_OUTAGE ? 'debug' : 'silent' });

// A worker whose database stops taking writes mid-job. On SQLite a read-only spell
// (`pragma query_only`, which fails every write with SQLITE_READONLY) stands in for the outage;
// the Postgres version, with real processes and a real connection loss, is
// test/e2e/database-outage.test.ts.
describe('a worker while its database refuses writes (SQLite)', () => {
  const open: { h: Harness; w: Worker }[] = [];
  afterEach(async () => {
    for (const { h, w } of open.splice(0)) {
      await sql`pragma query_only = 0`.execute(h.runtime.store.db);
      await w.stop();
      await h.close();
    }
  });

  async function start(leaseSeconds: number, train: JobHandler<TrainingTaskRow>) {
    const h = await openHarness('sqlite', { leaseSeconds, maxRunningPerTenant: 0 });
    const kinds = kindsOf(h.runtime.taskStore, h.runtime.generationStore, { train });
    const w = new Worker({
      store: h.runtime.store,
      config: h.config,
      kinds: [kinds.train],
      log: silent,
      slots: { accelerator: [{ kind: 'cpu', index: 0 }], preprocess: 0 },
      pollMs: 50,
    });
    open.push({ h, w });
    const readOnly = (on: boolean) => sql.raw(`pragma query_only = ${on ? 1 : 0}`).execute(h.runtime.store.db);
    const task = await insertTask(h.runtime.taskStore, { set: { status: 'QUEUED' } });
    await w.start();
    return { h, w, task, readOnly };
  }

  test('the job keeps running; its progress is coalesced and lands with its outcome once writes work again', async () => {
    let step: ((n: number, logs?: string) => Promise<TrainingTaskRow | undefined>) | null = null;
    let finish = () => undefined as void;
    const { h, task, readOnly } = await start(30, async (ctx: JobContext<TrainingTaskRow>) => {
      await new Promise<void>((resolve) => {
        finish = resolve;
        ctx.signal.addEventListener('abort', () => resolve());
        step = (n, logs) => ctx.update({ current_step: n, ...(logs ? { logs } : {}) });
      });
      return { set: { local_model_path: '/tmp/lora.safetensors' } };
    });
    await until(() => Promise.resolve(step), 'the handler to run');
    assert.equal((await step!(1))?.current_step, 1, 'a write that lands returns the row');

    await readOnly(true);
    assert.equal(await step!(2, 'line written in the outage\n'), undefined, 'a write that cannot land is deferred, not thrown');
    assert.equal(await step!(3), undefined);
    finish();
    await new Promise((r) => setTimeout(r, 600));
    const during = (await h.runtime.taskStore.get(task.id))!;
    assert.equal(during.status, 'TRAINING', 'the outcome waits for the database');
    assert.equal(during.current_step, 1);

    await readOnly(false);
    const done = await until(async () => {
      const row = await h.runtime.taskStore.get(task.id);
      return row?.status === 'COMPLETED' && row;
    }, 'the outcome to land');
    assert.equal(done.attempt, 1);
    assert.equal(done.current_step, 3, 'the newest deferred progress went out with the outcome');
    assert.equal(done.logs, 'line written in the outage\n', 'and so did a field written only in the outage');
    assert.equal(done.local_model_path, '/tmp/lora.safetensors');
  });

  test('a lease that cannot be renewed stops the job before it expires; the job then goes back to the queue and runs again', async () => {
    const runs: { claimedAt: number; stopReason?: unknown; stoppedAt?: number }[] = [];
    const { h, task, readOnly } = await start(2, async (ctx) => {
      const run: (typeof runs)[number] = { claimedAt: Date.now() };
      runs.push(run);
      if (runs.length > 1) return {};
      await new Promise<void>((resolve) =>
        ctx.signal.addEventListener('abort', () => {
          run.stopReason = ctx.signal.reason;
          run.stoppedAt = Date.now();
          resolve();
        }),
      );
      return {};
    });
    await until(async () => runs.length === 1 && (await h.runtime.taskStore.get(task.id))?.status === 'TRAINING', 'the claim');
    await readOnly(true);
    const { lease_expires_at: expiresAt } = (await h.runtime.taskStore.get(task.id))!;
    await until(async () => runs[0].stoppedAt, 'the stop', 5000, 20);
    assert.equal(runs[0].stopReason, 'lease_lost');
    assert.ok(runs[0].stoppedAt! < Date.parse(expiresAt!), 'stopped while the lease still held');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await h.runtime.taskStore.get(task.id))!.status, 'TRAINING', 'nothing can be written yet');

    await readOnly(false);
    const done = await until(async () => {
      const row = await h.runtime.taskStore.get(task.id);
      return row?.status === 'COMPLETED' && row;
    }, 'the second run to complete');
    assert.equal(done.attempt, 2, 'given back, then claimed again once');
    assert.equal(runs.length, 2);
    const history = await h.runtime.store.db.selectFrom('stage_runs').selectAll().where('task_id', '=', task.id).orderBy('id').execute();
    assert.deepEqual(
      history.map((r) => [r.attempt, r.outcome]),
      [
        [1, 'lease_lost'],
        [2, 'completed'],
      ],
    );
  });
});
