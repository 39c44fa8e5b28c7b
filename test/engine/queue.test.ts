import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { claimNext } from '../../src/engine/claim.js';
import { pino } from 'pino';
import { dropLease, LeaseKeeper, renewLease } from '../../src/engine/lease-keeper.js';
import { OutageLog } from '../../src/store/outage.js';
import { rescueExpired } from '../../src/engine/rescuer.js';
import { openRun } from '../../src/store/stage-runs.js';
import type { HTTPError } from '../../src/domain/schemas/errors.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { kindsOf } from '../helpers/kinds.js';
import { insertGeneration } from '../helpers/generations.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';

const kinds = (h: Harness) => kindsOf(h.runtime.taskStore, h.runtime.generationStore);
const claim = (h: Harness, stage: 'preprocess' | 'train', workerId = 'w1', cap = 0, leaseSeconds = 30) =>
  claimNext(kinds(h)[stage], { workerId, leaseSeconds, maxRunningPerTenant: cap });
const rescue = (h: Harness, maxAttempts: number) => rescueExpired(Object.values(kinds(h)), maxAttempts);

for (const dialect of DIALECTS) {
  describe(`queue (${dialect})`, () => {
    let h: Harness;
    before(async () => {
      h = await openHarness(dialect);
    });
    after(() => h.close());
    beforeEach(async () => {
      await h.runtime.store.db.deleteFrom('training_tasks').execute();
      await h.runtime.store.db.deleteFrom('webhook_deliveries').execute();
    });

    test('claims by priority (high first), then creation time', async () => {
      const t0 = Date.now() - 10_000;
      const a = await insertTask(h.runtime.taskStore, { priority: 1, createdAt: t0 });
      const b = await insertTask(h.runtime.taskStore, { priority: 3, createdAt: t0 + 1 });
      const c = await insertTask(h.runtime.taskStore, { priority: 1, createdAt: t0 + 2 });
      const d = await insertTask(h.runtime.taskStore, { priority: 0, createdAt: t0 - 5 });
      const e = await insertTask(h.runtime.taskStore, { priority: 3, createdAt: t0 + 3 });
      const order = [];
      for (let i = 0; i < 5; i++) order.push((await claim(h, 'preprocess'))!.id);
      assert.deepEqual(order, [b.id, e.id, a.id, c.id, d.id]);
      assert.equal(await claim(h, 'preprocess'), undefined);
    });

    test('a claim writes status, lease, attempt, stage-attempt id and start time', async () => {
      const t = await insertTask(h.runtime.taskStore);
      const before = Date.now();
      const row = (await claim(h, 'preprocess', 'worker-a'))!;
      assert.equal(row.status, 'PREPROCESSING');
      assert.equal(row.lease_owner, 'worker-a');
      assert.ok(Date.parse(row.lease_expires_at!) >= before + 29_000);
      assert.equal(row.attempt, 1);
      assert.equal(row.celery_preprocessing_task_id, `${t.id}:preprocess:1`);
      assert.ok(row.preprocessing_started_at);
      assert.equal(await claim(h, 'train'), undefined, 'nothing is QUEUED yet');
    });

    test('the per-tenant cap holds back a tenant at its limit, not the others', async () => {
      const a1 = await insertTask(h.runtime.taskStore, { tenant: 'a', createdAt: Date.now() - 3000 });
      const a2 = await insertTask(h.runtime.taskStore, { tenant: 'a', createdAt: Date.now() - 2000 });
      const b1 = await insertTask(h.runtime.taskStore, { tenant: 'b', createdAt: Date.now() - 1000 });
      assert.equal((await claim(h, 'preprocess', 'w', 1))!.id, a1.id);
      assert.equal((await claim(h, 'preprocess', 'w', 1))!.id, b1.id, 'a2 waits: tenant a holds one');
      assert.equal(await claim(h, 'preprocess', 'w', 1), undefined);
      // Cancelled but still running on its worker: the lease, not the status, holds the slot.
      await h.runtime.tasks.cancel(a1.id, { subject: 'x', tenantId: 'a', admin: false });
      assert.equal(await claim(h, 'preprocess', 'w', 1), undefined);
      await h.runtime.store.db.updateTable('training_tasks').set({ lease_owner: null, lease_expires_at: null }).where('id', '=', a1.id).execute();
      assert.equal((await claim(h, 'preprocess', 'w', 1))!.id, a2.id);
    });

    test('generations are claimed oldest first, and never twice by concurrent claimers', async () => {
      await h.runtime.store.db.deleteFrom('generations').execute();
      const t0 = Date.now() - 10_000;
      const made = [];
      for (let i = 0; i < 12; i++) made.push(await insertGeneration(h.runtime.generationStore, { created_at: new Date(t0 + ((i * 7919) % 12_000)).toISOString() }));
      const generate = kinds(h).generate;
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => claimNext(generate, { workerId: `g${i % 4}`, leaseSeconds: 30, maxRunningPerTenant: 0 })));
      const ids = results.filter(Boolean).map((r) => r!.id);
      assert.equal(ids.length, 12);
      assert.equal(new Set(ids).size, 12);
      for (const r of results.filter(Boolean)) assert.equal(r!.status, 'RUNNING');
      const sequential = [...made].sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id)).map((g) => g.id);
      await h.runtime.store.db.updateTable('generations').set({ status: 'PENDING', lease_owner: null, lease_expires_at: null }).execute();
      const order = [];
      for (let i = 0; i < 12; i++) order.push((await claimNext(generate, { workerId: 'one', leaseSeconds: 30, maxRunningPerTenant: 0 }))!.id);
      assert.deepEqual(order, sequential);
      await h.runtime.store.db.deleteFrom('generations').execute();
    });

    test('concurrent claimers never take the same task', async () => {
      for (let i = 0; i < 30; i++) await insertTask(h.runtime.taskStore);
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => claim(h, 'preprocess', `w${i % 4}`)));
      const ids = results.filter(Boolean).map((r) => r!.id);
      assert.equal(ids.length, 30);
      assert.equal(new Set(ids).size, 30);
    });

    test('a priority change reorders the queue', async () => {
      const admin = { subject: 'a', tenantId: null, admin: true };
      const first = await insertTask(h.runtime.taskStore, { createdAt: Date.now() - 2000 });
      const second = await insertTask(h.runtime.taskStore, { createdAt: Date.now() - 1000 });
      const res = await h.app.inject({ method: 'PATCH', url: `/api/v1/training/${second.id}/priority`, headers: await h.auth(null, { admin: true }), payload: { priority: 3 } });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json<TrainingTask>().priority, 3);
      assert.ok(res.json<TrainingTask>().priority_changed_at);
      assert.equal((await claim(h, 'preprocess'))!.id, second.id);
      assert.equal((await claim(h, 'preprocess'))!.id, first.id);
      const denied = await h.app.inject({ method: 'PATCH', url: `/api/v1/training/${first.id}/priority`, headers: await h.auth('acme'), payload: { priority: 0 } });
      assert.equal(denied.statusCode, 403);
      const bad = await h.app.inject({ method: 'PATCH', url: `/api/v1/training/${first.id}/priority`, headers: await h.auth(null, { admin: true }), payload: { priority: 7 } });
      assert.equal(bad.statusCode, 422);
      void admin;
    });

    test('cancel works from every non-terminal status', async () => {
      const who = { subject: 'x', tenantId: 'acme', admin: false };
      const pending = await insertTask(h.runtime.taskStore);
      assert.equal((await h.runtime.tasks.cancel(pending.id, who)).status, 'CANCELLED');
      for (const status of ['PREPROCESSING', 'QUEUED', 'TRAINING'] as const) {
        const t = await insertTask(h.runtime.taskStore, { set: { status, lease_owner: status === 'QUEUED' ? null : 'w9' } });
        const row = await h.runtime.tasks.cancel(t.id, who);
        assert.equal(row.status, 'CANCELLED', status);
        assert.equal(row.lease_owner, status === 'QUEUED' ? null : 'w9', 'the worker keeps its lease until its process exits');
      }
    });

    test('compare-and-set refuses a late write', async () => {
      const t = await insertTask(h.runtime.taskStore);
      await claim(h, 'preprocess', 'slow-worker');
      await h.runtime.tasks.cancel(t.id, { subject: 'x', tenantId: 'acme', admin: false });
      const late = await h.runtime.taskStore.transition(t.id, 'finish_preprocessing', { leaseOwner: 'slow-worker' });
      assert.equal(late.ok, false);
      const stale = await h.runtime.taskStore.transition(t.id, 'complete', {});
      assert.equal(stale.ok, false);
      assert.equal((await h.runtime.taskStore.get(t.id))!.status, 'CANCELLED');
      // A worker that lost its lease cannot finish a stage another worker now holds.
      const u = await insertTask(h.runtime.taskStore);
      const held = (await claim(h, 'preprocess', 'old'))!;
      await h.runtime.store.db.updateTable('training_tasks').set({ lease_owner: 'new' }).where('id', '=', u.id).execute();
      assert.equal((await h.runtime.taskStore.transition(u.id, 'finish_preprocessing', { leaseOwner: 'old' })).ok, false);
      assert.equal(await renewLease(h.runtime.store, 'training_tasks', u.id, 'old', 30), null);
      const next = await renewLease(h.runtime.store, 'training_tasks', u.id, 'new', 30);
      assert.ok(next && next >= held.lease_expires_at!, 'renewed to a later expiry');
      assert.equal((await h.runtime.taskStore.get(u.id))!.lease_expires_at, next);
    });

    test("a finished stage's bookkeeping never touches the next stage's lease, even when the same worker claimed it", async () => {
      const t = await insertTask(h.runtime.taskStore);
      const preprocess = (await claim(h, 'preprocess', 'w-same'))!;
      const keeper = new LeaseKeeper(h.runtime.store, {
        workerId: 'w-same',
        leaseSeconds: 30,
        log: pino({ level: 'silent' }),
        outage: new OutageLog(pino({ level: 'silent' })),
        stopGraceMs: 1000,
      });
      const first = keeper.hold('training_tasks', preprocess);
      // The outcome moves the row on and clears its lease; this worker claims the training stage at once.
      assert.ok((await h.runtime.taskStore.transition(t.id, 'finish_preprocessing', { leaseOwner: 'w-same', set: (_before, now) => kinds(h).preprocess.finish.set({}, now) })).ok);
      await new Promise((r) => setTimeout(r, 5)); // a later millisecond, so a later expiry
      const training = (await claim(h, 'train', 'w-same'))!;
      assert.equal(training.id, t.id);
      const second = keeper.hold('training_tasks', training);
      // Only now does the preprocessing job finish its bookkeeping.
      await keeper.forget(first);
      await dropLease(h.runtime.store, first, 'w-same');
      const row = (await h.runtime.taskStore.get(t.id))!;
      assert.equal(row.lease_owner, 'w-same', 'the training lease is still there');
      assert.equal(row.lease_expires_at, training.lease_expires_at);
      assert.deepEqual(keeper.idsOn('training_tasks'), [t.id], 'and still held, so still renewed');
      assert.equal(second.signal.aborted, false);
      await keeper.forget(second);
      await dropLease(h.runtime.store, second, 'w-same');
      assert.equal((await h.runtime.taskStore.get(t.id))!.lease_owner, null);
    });

    test('an expired lease is rescued, the attempt counted, and the task failed after the last attempt', async () => {
      const t = await insertTask(h.runtime.taskStore);
      const expire = () =>
        h.runtime.store.db
          .updateTable('training_tasks')
          .set({ lease_expires_at: new Date(Date.now() - 1000).toISOString() })
          .where('id', '=', t.id)
          .execute();
      // The dead worker's run is closed in the transaction that requeues its task.
      const runSeen: (string | null)[] = [];
      h.runtime.taskStore.onStatusChange(async (trx, _before, after) => {
        if (after.id !== t.id || after.status !== 'PENDING') return;
        runSeen.push((await trx.selectFrom('stage_runs').select('outcome').where('task_id', '=', t.id).executeTakeFirstOrThrow()).outcome);
      });
      const doomed = (await claim(h, 'preprocess', 'doomed'))!;
      await openRun(h.runtime.store, { jobId: t.id, kind: 'preprocess', attempt: doomed.attempt, workerId: 'doomed', startedAt: Date.now(), tenantId: 'acme', slot: 'preprocess' });
      await expire();
      let report = await rescue(h, 2);
      assert.deepEqual(runSeen, ['lease_expired']);
      assert.deepEqual(
        report.requeued.map((r) => r.id),
        [t.id],
      );
      const back = (await h.runtime.taskStore.get(t.id))!;
      assert.equal(back.status, 'PENDING');
      assert.equal(back.lease_owner, null);
      const second = (await claim(h, 'preprocess', 'next'))!;
      assert.equal(second.attempt, 2);
      assert.equal(second.celery_preprocessing_task_id, `${t.id}:preprocess:2`);
      await expire();
      report = await rescue(h, 2);
      assert.deepEqual(
        report.failed.map((r) => r.id),
        [t.id],
      );
      const failed = (await h.runtime.taskStore.get(t.id))!;
      assert.equal(failed.status, 'FAILED');
      assert.match(failed.error_message!, /lost its worker.*2 attempts.*KILN_MAX_ATTEMPTS=2/);
      // A live lease is left alone.
      const live = await insertTask(h.runtime.taskStore);
      await claim(h, 'preprocess', 'alive');
      report = await rescue(h, 2);
      assert.equal(report.requeued.length + report.failed.length, 0);
      assert.equal((await h.runtime.taskStore.get(live.id))!.status, 'PREPROCESSING');
    });

    test('a task cancelled while its worker died: the rescuer clears the lease and closes the dead run', async () => {
      const t = await insertTask(h.runtime.taskStore);
      const claimed = (await claim(h, 'preprocess', 'dead-worker'))!;
      const runId = await openRun(h.runtime.store, {
        jobId: t.id,
        kind: 'preprocess',
        attempt: claimed.attempt,
        workerId: 'dead-worker',
        startedAt: Date.now(),
        tenantId: 'acme',
        slot: 'preprocess',
      });
      await h.runtime.tasks.cancel(t.id, { subject: 't', tenantId: 'acme', admin: false });
      await h.runtime.store.db
        .updateTable('training_tasks')
        .set({ lease_expires_at: new Date(Date.now() - 1000).toISOString() })
        .where('id', '=', t.id)
        .execute();
      const report = await rescue(h, 3);
      assert.equal(report.cleared, 1);
      const row = (await h.runtime.taskStore.get(t.id))!;
      assert.equal(row.status, 'CANCELLED');
      assert.equal(row.lease_owner, null);
      const run = await h.runtime.store.db.selectFrom('stage_runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow();
      assert.equal(run.outcome, 'lease_expired');
      assert.ok(run.ended_at, 'the run is closed');
    });

    test('the rescuer works through every expired lease in batches, on both tables', async () => {
      const expired = new Date(Date.now() - 1000).toISOString();
      const tasks = [];
      for (let i = 0; i < 5; i++) tasks.push(await insertTask(h.runtime.taskStore));
      for (let i = 0; i < 5; i++) await claim(h, 'preprocess', `gone-${i}`);
      const generation = await insertGeneration(h.runtime.generationStore);
      await claimNext(kinds(h).generate, { workerId: 'gone-g', leaseSeconds: 30, maxRunningPerTenant: 0 });
      await h.runtime.store.db.updateTable('training_tasks').set({ lease_expires_at: expired }).execute();
      await h.runtime.store.db.updateTable('generations').set({ lease_expires_at: expired }).execute();
      const report = await rescueExpired(Object.values(kinds(h)), 3, 2);
      assert.deepEqual(report.requeued.map((r) => r.id).sort(), [...tasks.map((t) => t.id), generation.id].sort());
      assert.equal((await h.runtime.generationStore.get(generation.id))!.status, 'PENDING');
      await h.runtime.store.db.deleteFrom('generations').execute();
    });

    test('retry puts a FAILED or CANCELLED task back; other statuses are a 409', async () => {
      const headers = await h.auth('acme');
      const t = await insertTask(h.runtime.taskStore, { set: { status: 'FAILED', error_message: 'boom', attempt: 3 } });
      const res = await h.app.inject({ method: 'POST', url: `/api/v1/training/${t.id}/retry`, headers });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json<TrainingTask>().status, 'PENDING');
      assert.equal(res.json<TrainingTask>().error_message, null);
      assert.equal(res.json<TrainingTask>().attempt, 0);
      const again = await h.app.inject({ method: 'POST', url: `/api/v1/training/${t.id}/retry`, headers });
      assert.equal(again.statusCode, 409);
      const stopping = await insertTask(h.runtime.taskStore, { set: { status: 'CANCELLED', lease_owner: 'w' } });
      const busy = await h.app.inject({ method: 'POST', url: `/api/v1/training/${stopping.id}/retry`, headers });
      assert.equal(busy.statusCode, 409);
      assert.match(busy.json<HTTPError>().detail, /still stopping/);
    });
  });
}
