import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPError, HTTPValidationError } from '../../src/domain/schemas/errors.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';

for (const dialect of DIALECTS) {
  describe(`list, get and cancel (${dialect})`, () => {
    let h: Harness;
    let headers: Record<string, string>;
    const ids: string[] = [];
    const entity = '11111111-2222-4333-8444-555555555555';
    before(async () => {
      h = await openHarness(dialect);
      headers = await h.auth('paging');
      for (let i = 0; i < 25; i++) {
        const res = await h.app.inject({
          method: 'POST',
          url: '/api/v1/training/',
          headers,
          payload: { trigger_word: `T${i}`, entity_id: i % 5 === 0 ? entity : null },
        });
        ids.push(res.json<TrainingTask>().id);
      }
    });
    after(() => h.close());

    const list = async (query: string) => {
      const res = await h.app.inject({ method: 'GET', url: `/api/v1/training/${query}`, headers });
      return res;
    };

    test('lists newest first, 10 by default', async () => {
      const res = await list('');
      assert.equal(res.statusCode, 200);
      assert.deepEqual(
        res.json<TrainingTask[]>().map((t) => t.id),
        [...ids].reverse().slice(0, 10),
      );
      const noSlash = await h.app.inject({ method: 'GET', url: '/api/v1/training', headers });
      assert.equal(noSlash.json<TrainingTask[]>().length, 10);
    });

    test('skip and limit page through every task exactly once', async () => {
      const seen: string[] = [];
      for (let skip = 0; skip < 30; skip += 7) seen.push(...(await list(`?skip=${skip}&limit=7`)).json<TrainingTask[]>().map((t) => t.id));
      assert.deepEqual(seen, [...ids].reverse());
      assert.deepEqual((await list('?skip=25')).json(), []);
      assert.equal((await list('?skip=24&limit=1')).json<TrainingTask[]>()[0].id, ids[0]);
      assert.equal((await list('?limit=100')).json<TrainingTask[]>().length, 25);
      assert.equal((await list('?limit=1')).json<TrainingTask[]>().length, 1);
    });

    const badQueries: [string, string, string][] = [
      ['?limit=0', 'limit', 'greater_than_equal'],
      ['?limit=101', 'limit', 'less_than_equal'],
      ['?skip=-1', 'skip', 'greater_than_equal'],
      ['?limit=ten', 'limit', 'int_type'],
      ['?status=DONE', 'status', 'enum'],
      ['?entity_id=nope', 'entity_id', 'uuid_parsing'],
    ];
    for (const [query, field, type] of badQueries) {
      test(`${query} is a 422 at query.${field}`, async () => {
        const res = await list(query);
        assert.equal(res.statusCode, 422);
        assert.deepEqual(res.json<HTTPValidationError>().detail[0].loc, ['query', field]);
        assert.equal(res.json<HTTPValidationError>().detail[0].type, type);
      });
    }

    test('filters by status and entity_id', async () => {
      const byEntity = (await list(`?entity_id=${entity}&limit=100`)).json<TrainingTask[]>();
      assert.equal(byEntity.length, 5);
      assert.ok(byEntity.every((t) => t.entity_id === entity));
      await h.app.inject({ method: 'POST', url: `/api/v1/training/${ids[3]}/cancel`, headers });
      const cancelled = (await list('?status=CANCELLED')).json<TrainingTask[]>();
      assert.deepEqual(
        cancelled.map((t) => t.id),
        [ids[3]],
      );
      assert.equal((await list('?status=PENDING&limit=100')).json<TrainingTask[]>().length, 24);
    });

    test('create, get, cancel, cancel again: a round trip', async () => {
      const created = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: { trigger_word: 'RT' } });
      assert.equal(created.statusCode, 201);
      const id = created.json<TrainingTask>().id;
      const got = await h.app.inject({ method: 'GET', url: `/api/v1/training/${id}`, headers });
      assert.deepEqual(got.json(), created.json());
      const cancelled = await h.app.inject({ method: 'POST', url: `/api/v1/training/${id}/cancel`, headers });
      assert.equal(cancelled.statusCode, 200);
      assert.equal(cancelled.json<TrainingTask>().status, 'CANCELLED');
      assert.ok(cancelled.json<TrainingTask>().updated_at >= created.json<TrainingTask>().updated_at);
      const again = await h.app.inject({ method: 'POST', url: `/api/v1/training/${id}/cancel`, headers });
      assert.equal(again.statusCode, 200);
      assert.deepEqual(again.json(), cancelled.json(), 'a second cancel changes nothing');
      const after = await h.app.inject({ method: 'GET', url: `/api/v1/training/${id}`, headers });
      assert.equal(after.json<TrainingTask>().status, 'CANCELLED');
    });

    for (const terminal of ['COMPLETED', 'FAILED'] as const) {
      test(`cancelling a ${terminal} task is a 409 and leaves it ${terminal}`, async () => {
        const id = (await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: { trigger_word: 'Z' } })).json<TrainingTask>().id;
        await h.runtime.store.db.updateTable('training_tasks').set({ status: terminal }).where('id', '=', id).execute();
        const res = await h.app.inject({ method: 'POST', url: `/api/v1/training/${id}/cancel`, headers });
        assert.equal(res.statusCode, 409);
        assert.match(res.json<HTTPError>().detail, new RegExp(terminal));
        const got = await h.app.inject({ method: 'GET', url: `/api/v1/training/${id}`, headers });
        assert.equal(got.json<TrainingTask>().status, terminal);
      });
    }
  });
}
