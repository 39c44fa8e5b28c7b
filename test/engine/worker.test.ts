import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import pino from 'pino';
import { Worker } from '../../src/engine/worker.js';
import { JobFailure, type JobContext, type JobHandler } from '../../src/engine/job-kind.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import type { TrainingTaskRow } from '../../src/store/db.js';
import { kindsOf } from '../helpers/kinds.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';

const silent = pino({ level: 'silent' });

async function until<T>(probe: () => Promise<T | undefined | false>, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = await probe();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Stages written for the engine's tests: each waits for the test to release it or for a stop. */
function gatedStages() {
  const gates = new Map<string, () => void>();
  const seen: { stage: string; task: string; stopReason?: unknown; stoppedAt?: number }[] = [];
  const wait = (stage: string) => async (ctx: JobContext<TrainingTaskRow>) => {
    const entry: (typeof seen)[number] = { stage, task: ctx.row.id };
    seen.push(entry);
    await new Promise<void>((resolve) => {
      gates.set(`${stage}:${ctx.row.id}`, resolve);
      ctx.signal.addEventListener('abort', () => {
        entry.stopReason = ctx.signal.reason;
        entry.stoppedAt = Date.now();
        resolve();
      });
    });
    if (ctx.row.trigger_word === 'FAILME') throw new JobFailure(`${stage} refused this dataset`);
    await ctx.update({ current_step: 5 });
    return { set: stage === 'train' ? { local_model_path: '/tmp/lora.safetensors' } : { processed_dataset_path: '/tmp/ds' } };
  };
  const handlers: Record<'preprocess' | 'train', JobHandler<TrainingTaskRow>> = { preprocess: wait('preprocess'), train: wait('train') };
  const open = (stage: string, task: string) => gates.get(`${stage}:${task}`)?.();
  return { handlers, seen, open, gates };
}

/**
 * What each transaction that moved the task saw: the new status, then every stage run's outcome
 * ('open' for one still running). A worker closes a run in the transaction of the stage's outcome.
 */
function runsSeenAtEachStatus(h: Harness, taskId: string): string[][] {
  const seen: string[][] = [];
  h.runtime.taskStore.onStatusChange(async (trx, _before, after) => {
    if (after.id !== taskId) return;
    const runs = await trx.selectFrom('stage_runs').select('outcome').where('task_id', '=', taskId).orderBy('id').execute();
    seen.push([after.status, ...runs.map((r) => r.outcome ?? 'open')]);
  });
  return seen;
}

for (const dialect of DIALECTS) {
  describe(`worker (${dialect})`, () => {
    let h: Harness;
    before(async () => {
      h = await openHarness(dialect, { leaseSeconds: 2, maxRunningPerTenant: 0 });
    });
    after(() => h.close());

    const makeWorker = (handlers: Record<'preprocess' | 'train', JobHandler<TrainingTaskRow>>, id: string) => {
      const kinds = kindsOf(h.runtime.taskStore, h.runtime.generationStore, handlers);
      return new Worker({
        store: h.runtime.store,
        config: h.config,
        kinds: [kinds.preprocess, kinds.train],
        log: silent,
        slots: { accelerator: [{ kind: 'cpu', index: 0 }], preprocess: 1 },
        pollMs: 100,
        id,
      });
    };

    test('runs both stages to COMPLETED, logging each stage run', async () => {
      const g = gatedStages();
      const w = makeWorker(g.handlers, `w-complete-${dialect}`);
      await w.start();
      const t = await insertTask(h.runtime.taskStore, { set: { webhook_url: 'http://127.0.0.1:9/hook' } });
      const seen = runsSeenAtEachStatus(h, t.id);
      await until(() => Promise.resolve(g.gates.has(`preprocess:${t.id}`)), 'preprocessing to start');
      g.open('preprocess', t.id);
      await until(() => Promise.resolve(g.gates.has(`train:${t.id}`)), 'training to start');
      const training = (await h.runtime.taskStore.get(t.id))!;
      assert.equal(training.status, 'TRAINING');
      assert.equal(training.attempt, 1, 'attempts count per stage');
      assert.ok(training.preprocessing_completed_at && training.started_at);
      assert.equal(training.processed_dataset_path, '/tmp/ds');
      g.open('train', t.id);
      const done = await until(async () => {
        const r = await h.runtime.taskStore.get(t.id);
        return r?.status === 'COMPLETED' && r.lease_owner === null && r;
      }, 'completion');
      assert.equal(done.progress, 100);
      assert.equal(done.local_model_path, '/tmp/lora.safetensors');
      assert.ok(done.completed_at);
      const runs = await h.runtime.store.db.selectFrom('stage_runs').selectAll().where('task_id', '=', t.id).orderBy('id').execute();
      assert.deepEqual(
        runs.map((r) => [r.stage, r.outcome, r.tenant_id, r.slot]),
        [
          ['preprocess', 'completed', 'acme', 'preprocess'],
          ['train', 'completed', 'acme', 'cpu'],
        ],
        'each run carries its tenant and the kind of slot it held, which usage sums',
      );
      const listed = await h.app.inject({ method: 'GET', url: `/api/v1/training/${t.id}/runs`, headers: await h.auth('acme') });
      assert.equal(listed.statusCode, 200, listed.body);
      assert.deepEqual(
        listed
          .json<{ stage: string; attempt: number; slot: string; worker_id: string; outcome: string; seconds: number }[]>()
          .map((r) => [r.stage, r.attempt, r.slot, r.worker_id, r.outcome, r.seconds >= 0]),
        [
          ['preprocess', 1, 'preprocess', `w-complete-${dialect}`, 'completed', true],
          ['train', 1, 'cpu', `w-complete-${dialect}`, 'completed', true],
        ],
        'GET …/runs shows the same runs',
      );
      assert.equal((await h.app.inject({ method: 'GET', url: `/api/v1/training/${t.id}/runs`, headers: await h.auth('globex') })).statusCode, 404);
      const events = await h.runtime.store.db.selectFrom('webhook_deliveries').select('event_type').where('task_id', '=', t.id).orderBy('created_at').orderBy('id').execute();
      assert.deepEqual(
        events.map((e) => e.event_type),
        ['training.preprocessing', 'training.started', 'training.completed'],
      );
      await w.stop();
      // Each claim comes before its run opens; each stage's end closes its run in the same transaction.
      assert.deepEqual(seen, [['PREPROCESSING'], ['QUEUED', 'completed'], ['TRAINING', 'completed'], ['COMPLETED', 'completed', 'completed']]);
    });

    test('a cancel reaches the running stage within a second; the slot frees only when it returns', async () => {
      const g = gatedStages();
      const w = makeWorker(g.handlers, `w-cancel-${dialect}`);
      await w.start();
      const t = await insertTask(h.runtime.taskStore, { set: { status: 'QUEUED' } });
      await until(() => Promise.resolve(g.gates.has(`train:${t.id}`)), 'training to start');
      const cancelledAt = Date.now();
      const res = await h.app.inject({ method: 'POST', url: `/api/v1/training/${t.id}/cancel`, headers: await h.auth('acme') });
      assert.equal(res.json<TrainingTask>().status, 'CANCELLED', 'the record is CANCELLED when the call returns');
      const entry = await until(() => Promise.resolve(g.seen.find((s) => s.task === t.id && s.stoppedAt)), 'the stage to be stopped');
      assert.equal(entry.stopReason, 'cancelled');
      assert.ok(entry.stoppedAt! - cancelledAt < 1000, `stopped after ${entry.stoppedAt! - cancelledAt} ms`);
      const after = await until(async () => {
        const r = await h.runtime.taskStore.get(t.id);
        return r?.lease_owner === null && r;
      }, 'the lease to be dropped');
      assert.equal(after.status, 'CANCELLED');
      await w.stop();
    });

    test('a failing stage fails the task with its message', async () => {
      const g = gatedStages();
      const w = makeWorker(g.handlers, `w-fail-${dialect}`);
      await w.start();
      const t = await insertTask(h.runtime.taskStore, { set: { trigger_word: 'FAILME' } });
      const seen = runsSeenAtEachStatus(h, t.id);
      await until(() => Promise.resolve(g.gates.has(`preprocess:${t.id}`)), 'preprocessing to start');
      g.open('preprocess', t.id);
      const failed = await until(async () => {
        const r = await h.runtime.taskStore.get(t.id);
        return r?.status === 'FAILED' && r;
      }, 'failure');
      await w.stop();
      assert.equal(failed.error_message, 'preprocess refused this dataset');
      assert.deepEqual(seen, [['PREPROCESSING'], ['FAILED', 'failed']]);
    });

    test('shutdown gives the lease back and another worker resumes the stage as attempt 2', async () => {
      const g1 = gatedStages();
      const w1 = makeWorker(g1.handlers, `w-leaving-${dialect}`);
      await w1.start();
      const t = await insertTask(h.runtime.taskStore, { set: { status: 'QUEUED' } });
      const seen = runsSeenAtEachStatus(h, t.id);
      await until(() => Promise.resolve(g1.gates.has(`train:${t.id}`)), 'training to start');
      await w1.stop();
      const released = (await h.runtime.taskStore.get(t.id))!;
      assert.equal(released.status, 'QUEUED');
      assert.equal(released.lease_owner, null);
      assert.equal(g1.seen[0].stopReason, 'shutdown');
      assert.deepEqual(seen, [['TRAINING'], ['QUEUED', 'released']]);
      const g2 = gatedStages();
      const w2 = makeWorker(g2.handlers, `w-arriving-${dialect}`);
      await w2.start();
      await until(() => Promise.resolve(g2.gates.has(`train:${t.id}`)), 'the second worker to claim');
      const resumed = (await h.runtime.taskStore.get(t.id))!;
      assert.equal(resumed.attempt, 2);
      assert.equal(resumed.lease_owner, `w-arriving-${dialect}`);
      g2.open('train', t.id);
      await until(async () => (await h.runtime.taskStore.get(t.id))?.status === 'COMPLETED', 'completion');
      await w2.stop();
    });

    test('a worker that stops heartbeating loses its stage to the rescuer', async () => {
      const t = await insertTask(h.runtime.taskStore, { set: { status: 'QUEUED' } });
      // A claim by a worker that then vanishes: nobody renews the 2 s lease.
      const { claimNext } = await import('../../src/engine/claim.js');
      await claimNext(kindsOf(h.runtime.taskStore, h.runtime.generationStore).train, { workerId: 'ghost', leaseSeconds: 1, maxRunningPerTenant: 0 });
      const g = gatedStages();
      const w = makeWorker(g.handlers, `w-rescuer-${dialect}`);
      await w.start();
      await until(() => Promise.resolve(g.gates.has(`train:${t.id}`)), 'the rescued stage to run again', 8000);
      assert.equal((await h.runtime.taskStore.get(t.id))!.attempt, 2);
      g.open('train', t.id);
      await until(async () => (await h.runtime.taskStore.get(t.id))?.status === 'COMPLETED', 'completion');
      await w.stop();
    });

    if (dialect === 'postgres') {
      test('one worker at a time is the rescuer; when it stops, another takes over', async () => {
        const a = makeWorker(gatedStages().handlers, 'w-elect-a');
        const b = makeWorker(gatedStages().handlers, 'w-elect-b');
        await a.start();
        await b.start();
        await until(async () => a.isRescuer || b.isRescuer, 'a rescuer to be elected');
        await new Promise((r) => setTimeout(r, 1500));
        assert.equal(Number(a.isRescuer) + Number(b.isRescuer), 1, 'exactly one rescuer');
        const [leader, other] = a.isRescuer ? [a, b] : [b, a];
        await leader.stop();
        await until(async () => other.isRescuer, 'the other worker to take over');
        await other.stop();
      });
    }
  });
}

describe('a run whose start the database missed', () => {
  test('is recorded whole when the job ends, so usage still counts it', async () => {
    const h = await openHarness('sqlite');
    const g = gatedStages();
    const kinds = kindsOf(h.runtime.taskStore, h.runtime.generationStore, g.handlers);
    const w = new Worker({
      store: h.runtime.store,
      config: h.config,
      kinds: [kinds.preprocess],
      log: silent,
      slots: { accelerator: [], preprocess: 1 },
      pollMs: 50,
      id: 'w-late-run',
    });
    try {
      // Without its table, opening the run fails as it would with the database away.
      await sql`alter table stage_runs rename to stage_runs_away`.execute(h.runtime.store.db);
      await w.start();
      const t = await insertTask(h.runtime.taskStore);
      await until(() => Promise.resolve(g.gates.has(`preprocess:${t.id}`)), 'preprocessing to start');
      await sql`alter table stage_runs_away rename to stage_runs`.execute(h.runtime.store.db);
      g.open('preprocess', t.id);
      const runs = await until(async () => {
        const rows = await h.runtime.store.db.selectFrom('stage_runs').selectAll().where('task_id', '=', t.id).execute();
        return rows.length > 0 && rows;
      }, 'the run to be recorded');
      assert.equal(runs.length, 1);
      const [run] = runs;
      assert.deepEqual([run.stage, run.outcome, run.tenant_id, run.slot, run.worker_id], ['preprocess', 'completed', 'acme', 'preprocess', 'w-late-run']);
      assert.ok(run.ended_at && Date.parse(run.ended_at) >= Date.parse(run.started_at));
    } finally {
      await w.stop();
      await h.close();
    }
  });
});

describe('worker on a disk short of space', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness('sqlite');
  });
  after(() => h.close());

  test('claims nothing while the data dir is under KILN_MIN_FREE_DISK_MB, says so once, and resumes when space is back', async () => {
    const g = gatedStages();
    const kinds = kindsOf(h.runtime.taskStore, h.runtime.generationStore, g.handlers);
    const lines: { level: number; msg: string }[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
    // More MiB than any disk has free; the test lowers it as an operator's cleanup would raise the free space.
    const config = { ...h.config, minFreeDiskMb: 2 ** 40 };
    const w = new Worker({
      store: h.runtime.store,
      config,
      kinds: [kinds.preprocess, kinds.train],
      log,
      slots: { accelerator: [{ kind: 'cpu', index: 0 }], preprocess: 1 },
      pollMs: 50,
      id: 'w-disk',
    });
    await w.start();
    try {
      const t = await insertTask(h.runtime.taskStore);
      await new Promise((r) => setTimeout(r, 600));
      assert.equal((await h.runtime.taskStore.get(t.id))?.status, 'PENDING', 'a dozen polls later, still waiting');
      const warnings = lines.filter((l) => l.level === 40);
      assert.equal(warnings.length, 1, 'one warning, not one per poll');
      assert.match(warnings[0].msg, /^claiming no work: the data dir's disk has \d+ MiB free, under the 1099511627776 MiB it keeps \(KILN_MIN_FREE_DISK_MB\)$/);

      config.minFreeDiskMb = 0;
      await until(() => Promise.resolve(g.gates.has(`preprocess:${t.id}`)), 'preprocessing to start once space is back');
      assert.ok(lines.some((l) => l.msg === 'disk space is back above KILN_MIN_FREE_DISK_MB: claiming work again'));
      g.open('preprocess', t.id);
    } finally {
      await w.stop();
    }
  });
});
