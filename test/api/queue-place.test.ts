import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { QueuePlace } from '../../src/domain/schemas/queue.js';
import { claimNext } from '../../src/engine/claim.js';
import { closeRun, openRun } from '../../src/store/stage-runs.js';
import { readSse, type SseEvent } from '../../src/cli/client/watch.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';
import { insertGeneration } from '../helpers/generations.js';
import { kindsOf } from '../helpers/kinds.js';
import { insertTask } from '../helpers/tasks.js';

const CAP = 2;
/** The place of a job that no longer waits. */
const notWaiting = (status: string) => ({
  status,
  waiting_for: null,
  position: null,
  tenant_running: null,
  tenant_cap: null,
  estimated_training_seconds: null,
  held_by_tenant_cap: false,
});
const T0 = Date.parse('2026-12-01T10:00:00Z');

for (const dialect of DIALECTS) {
  describe(`queue place (${dialect})`, () => {
    let h: Harness;
    let acme: Record<string, string>;
    let admin: Record<string, string>;
    const place = async (path: string, headers = acme) => {
      const res = await h.app.inject({ method: 'GET', url: `/api/v1/${path}/queue`, headers });
      assert.equal(res.statusCode, 200, res.body);
      return res.json<QueuePlace>();
    };
    const queued = (tenant: string, minute: number, priority = 1) =>
      insertTask(h.runtime.taskStore, { tenant, priority, createdAt: T0 + minute * 60_000, set: { status: 'QUEUED' } });
    const request = (workerId: string) => ({ workerId, leaseSeconds: 60, maxRunningPerTenant: CAP });
    const claim = (kind: 'train', workerId = 'w') => claimNext(kindsOf(h.runtime.taskStore, h.runtime.generationStore)[kind], request(workerId));
    const claimGeneration = () => claimNext(kindsOf(h.runtime.taskStore, h.runtime.generationStore).generate, request('w'));

    before(async () => {
      h = await openHarness(dialect, { maxRunningPerTenant: CAP });
      acme = await h.auth('acme');
      admin = await h.auth('ops', { admin: true });
    });
    after(() => h.close());

    test('a waiting task is told how many jobs start before it, in the order the claims then take them', async () => {
      const older = await queued('acme', 1);
      const other = await queued('globex', 2);
      const urgent = await queued('acme', 3, 3);
      const newest = await queued('acme', 4);
      const pending = await insertTask(h.runtime.taskStore, { tenant: 'acme', createdAt: T0 });
      const expected = new Map([
        [urgent.id, 0],
        [older.id, 1],
        [other.id, 2],
        [newest.id, 3],
      ]);
      for (const [id, position] of expected) {
        const got = await place(`training/${id}`, admin);
        assert.equal(got.status, 'QUEUED');
        assert.equal(got.waiting_for, 'train');
        assert.equal(got.position, position, id);
      }
      assert.deepEqual(
        await place(`training/${pending.id}`),
        { status: 'PENDING', waiting_for: 'preprocess', position: 0, tenant_running: 0, tenant_cap: CAP, estimated_training_seconds: null, held_by_tenant_cap: false },
        'training waits are another queue',
      );

      // Generations take the accelerator slots first, so every waiting one is ahead of training.
      const generations = [await insertGeneration(h.runtime.generationStore), await insertGeneration(h.runtime.generationStore, { tenant_id: 'globex' })];
      assert.equal((await place(`training/${urgent.id}`)).position, 2);
      assert.equal((await place(`generations/${generations[0].id}`)).position, 0);
      assert.deepEqual(await place(`generations/${generations[1].id}`, await h.auth('globex')), {
        status: 'PENDING',
        waiting_for: 'generate',
        position: 1,
        tenant_running: null,
        tenant_cap: null,
        estimated_training_seconds: null,
        held_by_tenant_cap: false,
      });
      assert.equal((await claimGeneration())?.id, generations[0].id);
      assert.equal((await claimGeneration())?.id, generations[1].id);
      assert.deepEqual(await place(`generations/${generations[1].id}`, await h.auth('globex')), notWaiting('RUNNING'));

      // Position 0 is what the next claim takes, and so on down the queue.
      for (const id of [urgent.id, older.id]) {
        assert.equal((await place(`training/${id}`)).position, 0);
        assert.equal((await claim('train'))?.id, id);
      }
      assert.deepEqual(await place(`training/${urgent.id}`), notWaiting('TRAINING'));

      // acme now runs CAP stages: the claims pass over its newest task, and globex's goes first.
      const capped = await place(`training/${newest.id}`);
      assert.equal(capped.tenant_running, CAP);
      assert.equal(capped.tenant_cap, CAP);
      assert.equal(capped.held_by_tenant_cap, true);
      assert.equal((await place(`training/${other.id}`, admin)).position, 0);
      assert.equal(capped.position, 1);
      assert.equal((await claim('train'))?.id, other.id);
      assert.equal((await place(`training/${newest.id}`)).position, 0, 'first in line, held by the cap');
      assert.equal(await claim('train'), undefined, 'acme is at its cap');
    });

    test('a priority change moves a task in the place it is told', async () => {
      const first = await queued('initech', 10);
      const second = await queued('initech', 11);
      const initech = await h.auth('initech');
      assert.equal((await place(`training/${second.id}`, initech)).position, 1);
      const res = await h.app.inject({ method: 'PATCH', url: `/api/v1/training/${second.id}/priority`, headers: admin, payload: { priority: 2 } });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal((await place(`training/${second.id}`, initech)).position, 0);
      assert.equal((await place(`training/${first.id}`, initech)).position, 1);
    });

    test('a waiting task is told about how long its training will take, from the runs of its base model', async () => {
      const ran = async (steps: number, seconds: number, opts: { attempt?: number; base?: string } = {}) => {
        const task = await insertTask(h.runtime.taskStore, { tenant: 'hooli', set: { status: 'COMPLETED', steps, base_model_path: opts.base ?? MODEL } });
        const start = Date.parse('2026-12-01T09:00:00Z');
        const run = await openRun(h.runtime.store, { jobId: task.id, kind: 'train', attempt: opts.attempt ?? 1, workerId: 'w', startedAt: start, tenantId: 'hooli', slot: 'cpu' });
        await closeRun(h.runtime.store.db, run, 'completed', start + seconds * 1000);
      };
      const hooli = await h.auth('hooli');
      // A model of this test's own, so that the runs below are the only ones it has.
      const MODEL = '/models/flux-estimate';
      const waiting = await insertTask(h.runtime.taskStore, { tenant: 'hooli', priority: 0, set: { status: 'QUEUED', steps: 200, base_model_path: MODEL } });
      assert.equal((await place(`training/${waiting.id}`, hooli)).estimated_training_seconds, null, 'no runs yet');
      await ran(100, 60);
      assert.equal((await place(`training/${waiting.id}`, hooli)).estimated_training_seconds, 120, 'one run: its time per step');
      await ran(300, 140);
      // 20 s to start and finish, 0.4 s a step: 20 + 0.4 * 200.
      await ran(50, 5, { attempt: 2 }); // resumed from a checkpoint: not a whole run
      await ran(400, 9999, { base: 'black-forest-labs/FLUX.1-dev' });
      assert.equal((await place(`training/${waiting.id}`, hooli)).estimated_training_seconds, 100);
    });

    test("another tenant's task or generation is a 404, and the token is required", async () => {
      const task = await queued('globex', 20);
      const generation = await insertGeneration(h.runtime.generationStore, { tenant_id: 'globex', status: 'COMPLETED' });
      for (const url of [`/api/v1/training/${task.id}/queue`, `/api/v1/generations/${generation.id}/queue`]) {
        assert.equal((await h.app.inject({ method: 'GET', url, headers: acme })).statusCode, 404, url);
        assert.equal((await h.app.inject({ method: 'GET', url })).statusCode, 401, url);
      }
    });

    test('the event stream sends the place while the task waits, as it changes, and once when it starts', async () => {
      // Urgent, so that what earlier tests left waiting is behind them.
      const ahead = await queued('umbrella', 30, 3);
      const task = await queued('umbrella', 31, 3);
      await h.app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = h.app.server.address() as AddressInfo;
      const abort = new AbortController();
      const umbrella = await h.auth('umbrella');
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/training/${task.id}/events`, { headers: umbrella, signal: abort.signal });
      assert.equal(res.status, 200);
      const events = readSse(res.body as unknown as AsyncIterable<Uint8Array>);
      const next = async (type: string): Promise<SseEvent['data']> => {
        for (;;) {
          const result = await events.next();
          assert.ok(!result.done, `the stream ended before a ${type} event`);
          if (result.value.event === type) return result.value.data;
        }
      };
      try {
        assert.equal((await next('status')).status, 'QUEUED');
        assert.deepEqual(await next('queue'), {
          status: 'QUEUED',
          waiting_for: 'train',
          position: 1,
          tenant_running: 0,
          tenant_cap: CAP,
          estimated_training_seconds: null,
          held_by_tenant_cap: false,
        });
        const cancelled = await h.app.inject({ method: 'POST', url: `/api/v1/training/${ahead.id}/cancel`, headers: umbrella });
        assert.equal(cancelled.statusCode, 200, cancelled.body);
        assert.equal((await next('queue')).position, 0, 'the task ahead was cancelled');
        assert.equal((await claim('train', 'w2'))?.id, task.id);
        assert.equal((await next('status')).status, 'TRAINING');
        assert.deepEqual(await next('queue'), notWaiting('TRAINING'));
      } finally {
        abort.abort();
      }
    });
  });
}
