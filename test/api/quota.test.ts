import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { nextMonthStart } from '../../src/domain/quota.js';
import type { Usage } from '../../src/domain/schemas/usage.js';
import { closeRun, openRun } from '../../src/store/stage-runs.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';

const MINUTE = 60_000;

for (const dialect of DIALECTS) {
  describe(`monthly training allowance (${dialect})`, () => {
    let h: Harness;
    /** A finished run of the tenant's that ended a minute ago. */
    const ran = async (tenant: string, kind: string, minutes: number, slot = kind === 'preprocess' ? 'preprocess' : 'gpu') => {
      const end = Date.now() - MINUTE;
      const id = await openRun(h.runtime.store, {
        jobId: `${tenant}-${kind}-${end}-${minutes}`,
        kind,
        attempt: 1,
        workerId: 'w',
        startedAt: end - minutes * MINUTE,
        tenantId: tenant,
        slot,
      });
      await closeRun(h.runtime.store.db, id, 'completed', end);
    };
    const createTask = (headers: Record<string, string>, extra: Record<string, string> = {}) =>
      h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: { ...headers, ...extra }, payload: { trigger_word: 'T' } });
    const createGeneration = (headers: Record<string, string>) => h.app.inject({ method: 'POST', url: '/api/v1/generations/', headers, payload: { prompt: 'a mug' } });

    before(async () => {
      // One hour a month for a tenant whose token says nothing else. The runs are made to end a
      // minute ago; a month that began less than an hour ago would clip them, so the test asks
      // for the month to be older than that.
      h = await openHarness(dialect, { tenantMonthlyTrainingHours: 1 });
    });
    after(() => h.close());

    test('within the allowance a tenant creates; past it, a 429 that says how much was used and when it renews', async (t) => {
      if (Date.now() - Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1) < 2 * 3_600_000) return t.skip('the month began under two hours ago');
      const acme = await h.auth('acme');
      await ran('acme', 'train', 40);
      await ran('acme', 'preprocess', 30);
      assert.equal((await createTask(acme, { 'idempotency-key': 'first' })).statusCode, 201, 'preprocessing does not count: 40 of 60 minutes');
      await ran('acme', 'generate', 25);
      const refused = await createTask(acme);
      assert.equal(refused.statusCode, 429, refused.body);
      assert.match(
        refused.json<{ detail: string }>().detail,
        /^Tenant acme has used 1\.08 of its 1 training hours this month; new tasks and generations can start from \d{4}-\d{2}-01T00:00:00\.000Z\. Work already accepted runs on\.$/,
      );
      const wait = Number(refused.headers['retry-after']);
      assert.ok(Math.abs(wait - (nextMonthStart(Date.now()) - Date.now()) / 1000) < 5, `Retry-After ${wait} s: until the month renews`);
      assert.equal((await createGeneration(acme)).statusCode, 429, 'generations count and are refused alike');
      const usage = (await h.app.inject({ method: 'GET', url: '/api/v1/usage/', headers: acme })).json<Usage>();
      assert.equal(usage.allowance?.hours, 1);
      assert.ok(Math.abs(usage.allowance.used_hours - 65 / 60) < 0.01, `used ${usage.allowance?.used_hours} h`);
      assert.equal(usage.allowance?.renews_at, new Date(nextMonthStart(Date.now())).toISOString());
      const asAdmin = (await h.app.inject({ method: 'GET', url: '/api/v1/usage/', headers: await h.auth('ops', { admin: true }) })).json<Usage>();
      assert.equal(asAdmin.allowance, null);

      const replay = await createTask(acme, { 'idempotency-key': 'first' });
      assert.equal(replay.statusCode, 201, 'a replay of a create that was accepted is not refused');
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.equal((await createTask(await h.auth('acme', { admin: true }))).statusCode, 201, 'an admin is never refused');
      assert.equal((await createTask(await h.auth('globex'))).statusCode, 201, 'another tenant has its own allowance');
      assert.equal((await createTask(await h.auth('acme', { monthlyTrainingHours: 2 }))).statusCode, 201, "the token's own allowance wins");
    });

    test('a token allowance of 0 allows nothing; last month’s runs do not count', async () => {
      assert.equal((await createTask(await h.auth('initech', { monthlyTrainingHours: 0 }))).statusCode, 429);
      const lastMonth = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1) - 3 * 3_600_000;
      const id = await openRun(h.runtime.store, { jobId: 'old', kind: 'train', attempt: 1, workerId: 'w', startedAt: lastMonth, tenantId: 'hooli', slot: 'gpu' });
      await closeRun(h.runtime.store.db, id, 'completed', lastMonth + 2 * 3_600_000);
      assert.equal((await createTask(await h.auth('hooli'))).statusCode, 201);
    });
  });
}
