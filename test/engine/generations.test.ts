import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { claimNext } from '../../src/engine/claim.js';
import { JobFailure, type JobContext, type JobHandler } from '../../src/engine/job-kind.js';
import { Worker } from '../../src/engine/worker.js';
import type { HTTPError } from '../../src/domain/schemas/errors.js';
import type { Generation, GenerationCreate } from '../../src/domain/schemas/generations.js';
import type { GenerationRow, TrainingTaskRow } from '../../src/store/db.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';
import { kindsOf } from '../helpers/kinds.js';
import { insertTask } from '../helpers/tasks.js';
import { until } from '../helpers/processes.js';

const silent = pino({ level: 'silent' });

/** A generate handler that waits for the test (or a stop), then writes one image name. */
function gatedGenerations() {
  const started = new Map<string, { release: (fail?: boolean) => void; stopReason?: unknown; stoppedAt?: number }>();
  const handler: JobHandler<GenerationRow> = async (ctx: JobContext<GenerationRow>) => {
    let fail = false;
    await new Promise<void>((resolve) => {
      const entry: { release: (f?: boolean) => void; stopReason?: unknown; stoppedAt?: number } = {
        release: (f = false) => {
          fail = f;
          resolve();
        },
      };
      started.set(`${ctx.row.id}:${ctx.row.attempt}`, entry);
      ctx.signal.addEventListener('abort', () => {
        entry.stopReason = ctx.signal.reason;
        entry.stoppedAt = Date.now();
        resolve();
      });
    });
    if (fail) throw new JobFailure('the sampler refused this prompt');
    return { set: { images: JSON.stringify(['0.png']) } };
  };
  return { handler, started };
}

for (const dialect of DIALECTS) {
  describe(`generations as a job kind (${dialect})`, () => {
    let h: Harness;
    let headers: Record<string, string>;
    before(async () => {
      h = await openHarness(dialect, { leaseSeconds: 2, maxRunningPerTenant: 0, allowPrivateNetworks: true });
      headers = await h.auth('acme');
    });
    after(() => h.close());
    // A failed assertion must not leave a worker claiming the next test's rows.
    const workers: Worker[] = [];
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop()));
    });

    const workerWith = (generate: JobHandler<GenerationRow>, id: string, train?: JobHandler<TrainingTaskRow>) => {
      const kinds = kindsOf(h.runtime.taskStore, h.runtime.generationStore, { generate, train });
      const worker = new Worker({
        store: h.runtime.store,
        config: h.config,
        kinds: [kinds.preprocess, kinds.generate, kinds.train],
        log: silent,
        slots: { accelerator: [{ kind: 'cpu', index: 0 }], preprocess: 0 },
        pollMs: 100,
        id,
      });
      workers.push(worker);
      return worker;
    };
    const post = async (payload: object = {}) => {
      const res = await h.app.inject({ method: 'POST', url: '/api/v1/generations/', headers, payload: { prompt: 'a red mug', ...payload } });
      assert.equal(res.statusCode, 202, res.body);
      return res.json<{ id: string; status: string }>();
    };
    const action = (id: string, what: 'cancel' | 'retry', hdrs = headers) => h.app.inject({ method: 'POST', url: `/api/v1/generations/${id}/${what}`, headers: hdrs });
    const row = async (id: string) => (await h.runtime.generationStore.get(id))!;

    test('cancel while queued: CANCELLED at once, unchanged when repeated, never run; 404 for another tenant', async () => {
      const g = await post();
      assert.equal((await action(g.id, 'cancel', await h.auth('globex'))).statusCode, 404);
      const first = await action(g.id, 'cancel');
      assert.equal(first.statusCode, 200, first.body);
      assert.equal(first.json<Generation>().status, 'CANCELLED');
      const again = await action(g.id, 'cancel');
      assert.equal(again.statusCode, 200);
      assert.deepEqual(again.json(), first.json());
      const claimed = await claimNext(kindsOf(h.runtime.taskStore, h.runtime.generationStore).generate, { workerId: 'w', leaseSeconds: 30, maxRunningPerTenant: 0 });
      assert.notEqual(claimed?.id, g.id, 'a cancelled generation is never claimed');
      if (claimed) await h.runtime.generationStore.transition(claimed.id, 'cancel');
    });

    test('cancel while running stops the job within a second and frees the slot only when it returns', async () => {
      const gate = gatedGenerations();
      const w = workerWith(gate.handler, `w-gen-cancel-${dialect}`);
      await w.start();
      const g = await post({ webhook_url: 'http://127.0.0.1:9/hook' });
      const entry = await until(async () => gate.started.get(`${g.id}:1`), 'the generation to start', 10_000, 20);
      const running = await row(g.id);
      assert.equal(running.status, 'RUNNING');
      assert.equal(running.lease_owner, `w-gen-cancel-${dialect}`);
      const cancelledAt = Date.now();
      const res = await action(g.id, 'cancel');
      assert.equal(res.json<Generation>().status, 'CANCELLED', 'the record is CANCELLED when the call returns');
      await until(async () => entry.stoppedAt, 'the job to be stopped', 5000, 20);
      assert.equal(entry.stopReason, 'cancelled');
      assert.ok(entry.stoppedAt! - cancelledAt < 1000, `stopped after ${entry.stoppedAt! - cancelledAt} ms`);
      const after = await until(async () => {
        const r = await row(g.id);
        return r.lease_owner === null && r;
      }, 'the lease to be dropped');
      assert.equal(after.status, 'CANCELLED');
      assert.equal((await action(g.id, 'cancel')).json<Generation>().status, 'CANCELLED');
      const hooks = await h.runtime.store.db.selectFrom('webhook_deliveries').select('event_type').where('task_id', '=', g.id).execute();
      assert.deepEqual(hooks, [{ event_type: 'generation.cancelled' }], 'announced once, the repeat cancel adds nothing');
      // The run's history is closed after the lease is dropped (worker.ts): wait for it too.
      const runs = await until(async () => {
        const rows = await h.runtime.store.db.selectFrom('stage_runs').select(['stage', 'outcome']).where('task_id', '=', g.id).execute();
        return rows.length > 0 && rows.every((r) => r.outcome !== null) && rows;
      }, 'the run to be closed');
      assert.deepEqual(runs, [{ stage: 'generate', outcome: 'cancelled' }]);
    });

    test('completion and failure write the outcome, announce it by webhook, and finished ones refuse cancel with 409', async () => {
      const gate = gatedGenerations();
      const w = workerWith(gate.handler, `w-gen-done-${dialect}`);
      await w.start();
      const ok = await post({ webhook_url: 'http://127.0.0.1:9/hook' });
      (await until(async () => gate.started.get(`${ok.id}:1`), 'the first generation to start')).release();
      const bad = await post({ webhook_url: 'http://127.0.0.1:9/hook' });
      (await until(async () => gate.started.get(`${bad.id}:1`), 'the second generation to start')).release(true);
      const done = await until(async () => {
        const r = await row(ok.id);
        return r.status === 'COMPLETED' && r.lease_owner === null && r;
      }, 'completion');
      assert.deepEqual(JSON.parse(done.images), ['0.png']);
      assert.ok(done.completed_at);
      const failed = await until(async () => {
        const r = await row(bad.id);
        return r.status === 'FAILED' && r;
      }, 'failure');
      assert.equal(failed.error_message, 'the sampler refused this prompt');
      for (const id of [ok.id, bad.id]) {
        const res = await action(id, 'cancel');
        assert.equal(res.statusCode, 409);
        assert.match(res.json<HTTPError>().detail, /is (COMPLETED|FAILED) and can no longer be cancelled/);
      }
      const hooks = await h.runtime.store.db.selectFrom('webhook_deliveries').select(['task_id', 'event_type', 'payload']).where('task_id', 'in', [ok.id, bad.id]).execute();
      assert.deepEqual(
        hooks.map((d) => [d.task_id, d.event_type]).sort(),
        [
          [ok.id, 'generation.completed'],
          [bad.id, 'generation.failed'],
        ].sort(),
      );
      const payload = JSON.parse(hooks.find((d) => d.task_id === ok.id)!.payload) as { data: Generation };
      assert.equal(payload.data.status, 'COMPLETED');
      assert.deepEqual(payload.data.images, [`/api/v1/generations/${ok.id}/images/0.png`]);
    });

    test('retry puts a FAILED or CANCELLED generation back with its seed; others are a 409', async () => {
      const g = await post({ seed: 77 });
      assert.equal((await action(g.id, 'retry')).statusCode, 409, 'PENDING cannot be retried');
      await action(g.id, 'cancel');
      const res = await action(g.id, 'retry');
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json<Generation>().status, 'PENDING');
      assert.equal((JSON.parse((await row(g.id)).request) as GenerationCreate).seed, 77);
      await h.runtime.generationStore.transition(g.id, 'cancel');
    });

    test('a waiting generation gets the one accelerator slot before a waiting training stage', async () => {
      const gate = gatedGenerations();
      const trained: string[] = [];
      const w = workerWith(gate.handler, `w-gen-first-${dialect}`, async (ctx) => {
        trained.push(ctx.row.id);
        return {};
      });
      const task = await insertTask(h.runtime.taskStore, { set: { status: 'QUEUED' }, createdAt: Date.now() - 60_000 });
      const g = await post();
      await w.start();
      const entry = await until(async () => gate.started.get(`${g.id}:1`), 'the generation to start');
      assert.equal(trained.length, 0, 'training waits while the generation holds the slot');
      entry.release();
      await until(async () => trained.includes(task.id), 'training to follow');
    });

    test('a generation whose worker vanished is rescued and completes on another worker as attempt 2', async () => {
      const g = await post();
      // Claimed by a worker that then dies: nobody renews its 1 s lease.
      await claimNext(kindsOf(h.runtime.taskStore, h.runtime.generationStore).generate, { workerId: 'ghost', leaseSeconds: 1, maxRunningPerTenant: 0 });
      assert.equal((await row(g.id)).lease_owner, 'ghost');
      const gate = gatedGenerations();
      const w = workerWith(gate.handler, `w-gen-rescuer-${dialect}`);
      await w.start();
      (await until(async () => gate.started.get(`${g.id}:2`), 'the rescued generation to run again', 8000)).release();
      const done = await until(async () => {
        const r = await row(g.id);
        return r.status === 'COMPLETED' && r;
      }, 'completion');
      assert.equal(done.attempt, 2);
      const runs = await h.runtime.store.db.selectFrom('stage_runs').select(['worker_id', 'outcome']).where('task_id', '=', g.id).orderBy('id').execute();
      assert.deepEqual(runs, [{ worker_id: `w-gen-rescuer-${dialect}`, outcome: 'completed' }]);
    });
  });
}
