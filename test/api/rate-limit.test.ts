import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPError } from '../../src/domain/schemas/errors.js';
import { openHarness, type Harness } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';

/** One small file part, as a browser or `kiln train` would send it. */
function multipart(): { payload: string; headers: Record<string, string> } {
  const boundary = 'kilnboundary';
  const payload = [
    `--${boundary}`,
    'Content-Disposition: form-data; name="files"; filename="a.jpg"',
    'Content-Type: image/jpeg',
    '',
    'not really a jpeg',
    `--${boundary}--`,
    '',
  ].join('\r\n');
  return { payload, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

// The limiter keeps its counters in the process, not the database: one dialect is enough.
describe('rate limits (KILN_RATE_LIMIT_*)', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness('sqlite', { rateLimit: { createsPerMinute: 3, uploadsPerMinute: 2 } });
  });
  after(() => h.close());

  const create = async (tenant: string, admin = false) =>
    h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: await h.auth(tenant, { admin }), payload: { trigger_word: 'SNKR' } });
  const count = async (tenant: string) => (await h.runtime.taskStore.db.selectFrom('training_tasks').select('id').where('origin_tenant_id', '=', tenant).execute()).length;

  test('the creation past the limit is a 429 with Retry-After and a FastAPI body, and creates nothing', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await create('acme');
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['x-ratelimit-remaining'], String(2 - i));
    }
    const refused = await create('acme');
    assert.equal(refused.statusCode, 429);
    const retryAfter = Number(refused.headers['retry-after']);
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `retry-after ${refused.headers['retry-after']}`);
    const body = refused.json<HTTPError>();
    assert.deepEqual(Object.keys(body), ['detail']);
    assert.match(body.detail, /at most 3 creations per minute per tenant; retry in \d+ s/);
    assert.equal(await count('acme'), 3);
  });

  test('another tenant has its own count', async () => {
    assert.equal((await create('globex')).statusCode, 201);
    assert.equal((await create('acme')).statusCode, 429);
  });

  test('an admin is never limited', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await create('acme', true);
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['x-ratelimit-remaining'], undefined);
    }
  });

  test('reads are not limited, and generations count apart from tasks', async () => {
    const headers = await h.auth('acme');
    for (let i = 0; i < 5; i++) assert.equal((await h.app.inject({ method: 'GET', url: '/api/v1/training/', headers })).statusCode, 200);
    const lora = await insertTask(h.runtime.taskStore, { set: { status: 'COMPLETED', local_model_path: '/data/lora.safetensors', base_model_path: 'builtin:tiny-flux' } });
    const res = await h.app.inject({ method: 'POST', url: '/api/v1/generations/', headers, payload: { prompt: 'a mug', loras: [{ training_task_id: lora.id }] } });
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(res.headers['x-ratelimit-remaining'], '2');
  });

  test('uploads have their own limit', async () => {
    const headers = await h.auth('acme');
    const form = multipart();
    for (let i = 0; i < 2; i++) {
      const res = await h.app.inject({ method: 'POST', url: '/api/v1/uploads/', headers: { ...headers, ...form.headers }, payload: form.payload });
      assert.equal(res.statusCode, 201, res.body);
    }
    const refused = await h.app.inject({ method: 'POST', url: '/api/v1/uploads/', headers: { ...headers, ...form.headers }, payload: form.payload });
    assert.equal(refused.statusCode, 429);
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    assert.match(refused.json<HTTPError>().detail, /at most 2 upload requests per minute/);
  });
});

describe('rate limits are off by default', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness('sqlite');
  });
  after(() => h.close());

  test('many creations of one tenant all succeed, with no limit headers', async () => {
    const headers = await h.auth('acme');
    for (let i = 0; i < 30; i++) {
      const res = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: { trigger_word: 'SNKR' } });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['x-ratelimit-limit'], undefined);
    }
  });
});
