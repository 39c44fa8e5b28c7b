import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPValidationError } from '../../src/domain/schemas/errors.js';
import type { Usage } from '../../src/domain/schemas/usage.js';
import { closeRun, openRun } from '../../src/store/stage-runs.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';

const NOV = (day: number, hhmm: string) => Date.parse(`2026-11-${String(day).padStart(2, '0')}T${hhmm}:00.000Z`);

for (const dialect of DIALECTS) {
  describe(`GET /api/v1/usage/ (${dialect})`, () => {
    let h: Harness;
    let acme: Record<string, string>;
    const record = async (tenant: string | null, kind: string, slot: string, from: number, to: number | null, jobId = `job-${from}-${kind}`) => {
      const id = await openRun(h.runtime.store, { jobId, kind, attempt: 1, workerId: 'w', startedAt: from, tenantId: tenant, slot });
      if (to !== null) await closeRun(h.runtime.store.db, id, 'completed', to);
    };
    const usage = async (query: string, headers = acme) => {
      const res = await h.app.inject({ method: 'GET', url: `/api/v1/usage/?${query}`, headers });
      assert.equal(res.statusCode, 200, res.body);
      return res.json<Usage>();
    };
    const NOVEMBER = `since=2026-11-01T00:00:00Z&until=2026-12-01T00:00:00Z`;

    before(async () => {
      h = await openHarness(dialect);
      acme = await h.auth('acme');
      await record('acme', 'preprocess', 'preprocess', NOV(2, '10:00'), NOV(2, '10:01'));
      await record('acme', 'train', 'gpu', NOV(2, '10:01'), NOV(2, '10:21'));
      await record('acme', 'train', 'gpu', NOV(30, '23:50'), Date.parse('2026-12-01T00:10:00Z'));
      await record('acme', 'generate', 'gpu', NOV(3, '09:00'), NOV(3, '09:00') + 4500);
      await record('globex', 'train', 'cpu', NOV(5, '12:00'), NOV(5, '13:00'));
      await record('acme', 'train', 'gpu', Date.parse('2026-10-31T10:00:00Z'), Date.parse('2026-10-31T11:00:00Z'));
    });
    after(() => h.close());

    test("a tenant sees its own slot time, a run crossing the period's end counted up to it; an admin sees every tenant's", async () => {
      const own = await usage(NOVEMBER);
      assert.equal(own.since, '2026-11-01T00:00:00.000Z');
      assert.equal(own.until, '2026-12-01T00:00:00.000Z');
      assert.deepEqual(own.usage, [
        { tenant_id: 'acme', job: 'generate', slot: 'gpu', runs: 1, seconds: 4.5 },
        { tenant_id: 'acme', job: 'preprocess', slot: 'preprocess', runs: 1, seconds: 60 },
        { tenant_id: 'acme', job: 'train', slot: 'gpu', runs: 2, seconds: 1200 + 600 },
      ]);
      assert.deepEqual((await usage(NOVEMBER, await h.auth('globex'))).usage, [{ tenant_id: 'globex', job: 'train', slot: 'cpu', runs: 1, seconds: 3600 }]);
      const all = await usage(NOVEMBER, await h.auth('ops', { admin: true }));
      assert.deepEqual(
        all.usage.map((l) => [l.tenant_id, l.job, l.slot]),
        [
          ['acme', 'generate', 'gpu'],
          ['acme', 'preprocess', 'preprocess'],
          ['acme', 'train', 'gpu'],
          ['globex', 'train', 'cpu'],
        ],
      );
      const december = await usage('since=2026-12-01T00:00:00Z&until=2027-01-01T00:00:00Z');
      assert.deepEqual(december.usage, [{ tenant_id: 'acme', job: 'train', slot: 'gpu', runs: 1, seconds: 600 }], 'the rest of that run falls in December');
      assert.equal((await usage('since=2026-11-01T01:00:00%2B01:00&until=2026-11-02T10:00:30Z')).usage[0].seconds, 30, 'an offset in since is read as such');
    });

    test("by default, this month so far: a run open now counts up to now; a deleted task's runs still count", async () => {
      const task = await insertTask(h.runtime.taskStore, { set: { status: 'COMPLETED' } });
      // The fixed runs above may fall in the current month too: compare with what it held before.
      const seconds = (u: Usage, job: string) => u.usage.find((l) => l.job === job && l.slot === 'gpu')?.seconds ?? 0;
      const earlier = await usage('');
      const now = Date.now();
      await record('acme', 'train', 'gpu', now - 90_000, now - 30_000, task.id);
      await record('acme', 'generate', 'gpu', now - 5000, null);
      const deleted = await h.app.inject({ method: 'DELETE', url: `/api/v1/training/${task.id}`, headers: acme });
      assert.equal(deleted.statusCode, 204, deleted.body);
      const current = await usage('');
      assert.equal(current.since, new Date(Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1)).toISOString());
      assert.ok(Date.parse(current.until) >= now);
      assert.equal(seconds(current, 'train') - seconds(earlier, 'train'), 60, 'the deleted task’s run');
      const open = seconds(current, 'generate') - seconds(earlier, 'generate');
      assert.ok(open >= 5 && open < 60, `the open run: ${open} s`);
    });

    test('an empty or unreadable period is a 422 naming the parameter; no token is a 401', async () => {
      for (const [query, loc] of [
        ['since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z', 'query.until'],
        ['since=2026-11-01T00:00:00Z&until=2026-11-01T00:00:00Z', 'query.until'],
        ['since=2999-01-01T00:00:00Z', 'query.since'],
        ['since=yesterday', 'query.since'],
        ['until=2026-11-01', 'query.until'],
      ]) {
        const res = await h.app.inject({ method: 'GET', url: `/api/v1/usage/?${query}`, headers: acme });
        assert.equal(res.statusCode, 422, `${query}: ${res.body}`);
        assert.deepEqual(
          res.json<HTTPValidationError>().detail.map((d) => d.loc.join('.')),
          [loc],
          query,
        );
      }
      assert.equal((await h.app.inject({ method: 'GET', url: '/api/v1/usage/' })).statusCode, 401);
    });
  });
}
