import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPValidationError } from '../../src/domain/schemas/errors.js';
import type { Generation } from '../../src/domain/schemas/generations.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';

for (const dialect of DIALECTS) {
  describe(`GET /api/v1/generations/ (${dialect})`, () => {
    let h: Harness;
    let acme: Record<string, string>;
    let globex: Record<string, string>;
    const made: Record<string, Generation> = {};
    let loraA: string;
    let loraB: string;

    const completedLora = async (tenant: string) =>
      (await insertTask(h.runtime.taskStore, { tenant, set: { status: 'COMPLETED', local_model_path: '/data/lora.safetensors', base_model_path: 'builtin:tiny-flux' } })).id;
    const create = async (headers: Record<string, string>, prompt: string, loras: string[]) => {
      const res = await h.app.inject({ method: 'POST', url: '/api/v1/generations/', headers, payload: { prompt, loras: loras.map((id) => ({ training_task_id: id })) } });
      assert.equal(res.statusCode, 202, res.body);
      return (made[prompt] = res.json<Generation>());
    };
    const list = async (query: string, headers = acme) => {
      const res = await h.app.inject({ method: 'GET', url: `/api/v1/generations/?${query}`, headers });
      assert.equal(res.statusCode, 200, res.body);
      return res.json<Generation[]>();
    };
    const prompts = (page: Generation[]) => page.map((g) => g.prompt);

    before(async () => {
      h = await openHarness(dialect);
      acme = await h.auth('acme');
      globex = await h.auth('globex');
      loraA = await completedLora('acme');
      loraB = await completedLora('acme');
      await create(acme, 'plain', []);
      await create(acme, 'with A', [loraA]);
      await create(acme, 'with A and B', [loraA, loraB]);
      await create(globex, 'globex own', [await completedLora('globex')]);
    });
    after(() => h.close());

    test("newest first, the caller's own only, each as GET /generations/{id} returns it", async () => {
      const page = await list('');
      assert.deepEqual(prompts(page), ['with A and B', 'with A', 'plain']);
      for (const g of page) {
        const one = await h.app.inject({ method: 'GET', url: `/api/v1/generations/${g.id}`, headers: acme });
        assert.deepEqual(g, one.json<Generation>());
      }
      assert.deepEqual(prompts(await list('', globex)), ['globex own']);
      const admin = await list('', await h.auth('ops', { admin: true }));
      assert.deepEqual(prompts(admin), ['globex own', 'with A and B', 'with A', 'plain'], "an admin sees every tenant's");
      assert.deepEqual(prompts(await list('tenant_id=globex', await h.auth('ops', { admin: true }))), ['globex own'], 'or one tenant’s');
      assert.deepEqual(await list('tenant_id=globex'), [], 'a tenant asking for another’s sees none of them');
    });

    test('pages with skip and limit', async () => {
      assert.deepEqual(prompts(await list('limit=2')), ['with A and B', 'with A']);
      assert.deepEqual(prompts(await list('skip=2&limit=2')), ['plain']);
      assert.deepEqual(await list('skip=3'), []);
    });

    test("filters by status and by a training task's LoRA", async () => {
      const cancelled = await h.app.inject({ method: 'POST', url: `/api/v1/generations/${made['with A'].id}/cancel`, headers: acme });
      assert.equal(cancelled.statusCode, 200, cancelled.body);
      assert.deepEqual(prompts(await list('status=CANCELLED')), ['with A']);
      assert.deepEqual(prompts(await list('status=PENDING')), ['with A and B', 'plain']);
      assert.deepEqual(prompts(await list(`training_task_id=${loraA}`)), ['with A and B', 'with A']);
      assert.deepEqual(prompts(await list(`training_task_id=${loraB}&status=PENDING`)), ['with A and B']);
      assert.deepEqual(await list(`training_task_id=${loraA}`, globex), [], "another tenant's LoRA finds none of its generations");
    });

    test('a bad query is a 422 naming the parameter; no token is a 401', async () => {
      for (const [query, loc] of [
        ['limit=0', 'query.limit'],
        ['limit=101', 'query.limit'],
        ['skip=-1', 'query.skip'],
        ['status=TRAINING', 'query.status'],
        ['training_task_id=not-a-uuid', 'query.training_task_id'],
      ]) {
        const res = await h.app.inject({ method: 'GET', url: `/api/v1/generations/?${query}`, headers: acme });
        assert.equal(res.statusCode, 422, query);
        assert.deepEqual(
          res.json<HTTPValidationError>().detail.map((d) => d.loc.join('.')),
          [loc],
          query,
        );
      }
      assert.equal((await h.app.inject({ method: 'GET', url: '/api/v1/generations/' })).statusCode, 401);
    });
  });
}
