import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPValidationError } from '../../src/domain/schemas/errors.js';
import type { Generation } from '../../src/domain/schemas/generations.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { expireKeys } from '../../src/store/idempotency.js';
import { isoNow } from '../../src/util/time.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';

for (const dialect of DIALECTS) {
  describe(`Idempotency-Key on creates (${dialect})`, () => {
    let h: Harness;
    let headers: Record<string, string>;
    before(async () => {
      h = await openHarness(dialect);
      headers = await h.auth('acme');
    });
    after(() => h.close());

    const body = (trigger = 'SNKR') => ({ trigger_word: trigger, source_images: ['https://example.com/a.jpg'], steps: 500 });
    const createTask = (key: string | null, payload: object = body(), hdrs = headers) =>
      h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: { ...hdrs, ...(key === null ? {} : { 'idempotency-key': key }) }, payload });
    const count = async (trigger: string) => (await h.runtime.store.db.selectFrom('training_tasks').select('id').where('trigger_word', '=', trigger).execute()).length;

    test('the same key and body return the first task, marked as replayed, and create nothing more', async () => {
      const first = await createTask('order-1001', body('IDEM1'));
      assert.equal(first.statusCode, 201, first.body);
      assert.equal(first.headers['idempotent-replayed'], undefined);
      // The same body with its keys in another order is the same request.
      const again = await createTask('order-1001', { steps: 500, source_images: ['https://example.com/a.jpg'], trigger_word: 'IDEM1' });
      assert.equal(again.statusCode, 201);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.equal(again.json<TrainingTask>().id, first.json<TrainingTask>().id);
      // Defaults spelled out are the request they would be left out of.
      const spelled = await createTask('order-1001', { ...body('IDEM1'), rank: 16, learning_rate: 0.0001, optimizer: 'adamw8bit' });
      assert.equal(spelled.headers['idempotent-replayed'], 'true', spelled.body);
      assert.equal(await count('IDEM1'), 1);
      assert.equal((await createTask(null, body('IDEM1'))).statusCode, 201, 'without a key every request creates');
      assert.equal(await count('IDEM1'), 2);
    });

    test('the same key with another body is a 422 at the header; another tenant has keys of its own', async () => {
      await createTask('order-1002', body('IDEM2'));
      const other = await createTask('order-1002', body('IDEM2-CHANGED'));
      assert.equal(other.statusCode, 422);
      assert.deepEqual(other.json<HTTPValidationError>().detail, [
        { loc: ['header', 'idempotency-key'], msg: 'This Idempotency-Key was already used with a different request; use a new key for a new request', type: 'value_error' },
      ]);
      const globex = await createTask('order-1002', body('IDEM2'), await h.auth('globex'));
      assert.equal(globex.statusCode, 201);
      assert.equal(globex.headers['idempotent-replayed'], undefined);
      assert.equal(await count('IDEM2'), 2);
    });

    test('concurrent requests with one key make one task, and all of them answer with it', async () => {
      const answers = await Promise.all(Array.from({ length: 6 }, () => createTask('order-1003', body('IDEM3'))));
      assert.deepEqual(
        answers.map((a) => a.statusCode),
        Array(6).fill(201),
      );
      assert.equal(new Set(answers.map((a) => a.json<TrainingTask>().id)).size, 1);
      assert.equal(answers.filter((a) => a.headers['idempotent-replayed'] === 'true').length, 5);
      assert.equal(await count('IDEM3'), 1);
    });

    test('a malformed key is a 422 at the header', async () => {
      for (const key of ['has space', 'x'.repeat(256)]) {
        const res = await createTask(key, body('IDEM4'));
        assert.equal(res.statusCode, 422, key);
        assert.deepEqual(res.json<HTTPValidationError>().detail[0].loc, ['header', 'idempotency-key']);
      }
      assert.equal(await count('IDEM4'), 0);
    });

    test('once the task is deleted, or the key expired, the key creates anew', async () => {
      const first = (await createTask('order-1005', body('IDEM5'))).json<TrainingTask>();
      await h.app.inject({ method: 'POST', url: `/api/v1/training/${first.id}/cancel`, headers });
      assert.equal((await h.app.inject({ method: 'DELETE', url: `/api/v1/training/${first.id}`, headers })).statusCode, 204);
      const second = await createTask('order-1005', body('IDEM5'));
      assert.equal(second.headers['idempotent-replayed'], undefined);
      assert.notEqual(second.json<TrainingTask>().id, first.id);

      assert.ok((await expireKeys(h.runtime.store.db, isoNow(Date.now() + 1000))) >= 1);
      const third = await createTask('order-1005', body('IDEM5'));
      assert.equal(third.headers['idempotent-replayed'], undefined);
      assert.equal(await count('IDEM5'), 2);
    });

    test('a repeat is not validated again: the first request passed, and its task is what it returns', async () => {
      // A source that is valid now but not later: its upload.
      const boundary = '----kiln-idem';
      const payload = `--${boundary}\r\ncontent-disposition: form-data; name="files"; filename="a.jpg"\r\ncontent-type: image/jpeg\r\n\r\nbytes\r\n--${boundary}--\r\n`;
      const up = await h.app.inject({ method: 'POST', url: '/api/v1/uploads/', headers: { ...headers, 'content-type': `multipart/form-data; boundary=${boundary}` }, payload });
      const { id, reference } = up.json<{ uploads: { id: string; reference: string }[] }>().uploads[0];
      const made = await createTask('order-1006', { trigger_word: 'IDEM6', source_images: [reference] });
      assert.equal(made.statusCode, 201, made.body);
      await h.app.inject({ method: 'DELETE', url: `/api/v1/uploads/${id}`, headers });
      const again = await createTask('order-1006', { trigger_word: 'IDEM6', source_images: [reference] });
      assert.equal(again.statusCode, 201, again.body);
      assert.equal(again.json<TrainingTask>().id, made.json<TrainingTask>().id);
    });

    test('generations take a key too', async () => {
      const post = () =>
        h.app.inject({ method: 'POST', url: '/api/v1/generations/', headers: { ...headers, 'idempotency-key': 'gen-1' }, payload: { prompt: 'a red mug', seed: 3 } });
      const first = await post();
      assert.equal(first.statusCode, 202, first.body);
      const again = await post();
      assert.equal(again.statusCode, 202);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.equal(again.json<Generation>().id, first.json<Generation>().id);
      const changed = await h.app.inject({
        method: 'POST',
        url: '/api/v1/generations/',
        headers: { ...headers, 'idempotency-key': 'gen-1' },
        payload: { prompt: 'a blue mug', seed: 3 },
      });
      assert.equal(changed.statusCode, 422);
    });
  });
}
