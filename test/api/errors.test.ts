import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPValidationError } from '../../src/domain/schemas/errors.js';
import { openHarness, type Harness } from '../helpers/harness.js';

/** The parts of the OpenAPI document the test reads. */
interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
  components: {
    schemas: Record<string, { enum?: unknown[]; required?: string[]; properties?: Record<string, unknown> }>;
    securitySchemes: Record<string, unknown>;
  };
}

describe('error shapes', () => {
  let h: Harness;
  let headers: Record<string, string>;
  before(async () => {
    h = await openHarness('sqlite');
    headers = await h.auth('acme');
  });
  after(() => h.close());

  test('a task_id that is not a UUID is a 422 at path.task_id', async () => {
    for (const [method, url] of [
      ['GET', '/api/v1/training/123'],
      ['POST', '/api/v1/training/123/cancel'],
    ] as const) {
      const res = await h.app.inject({ method, url, headers });
      assert.equal(res.statusCode, 422);
      assert.deepEqual(res.json(), { detail: [{ loc: ['path', 'task_id'], msg: 'Input should be a valid UUID', type: 'uuid_parsing' }] });
    }
  });

  test('an unknown task is a 404 with a detail string', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/api/v1/training/0b7f6a3e-51d8-4a7a-9d5e-2a1a9e4cfa11', headers });
    assert.equal(res.statusCode, 404);
    assert.deepEqual(res.json(), { detail: 'Training task not found' });
  });

  test('an unknown route is a 404 as FastAPI answers it', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/api/v1/nothing-here', headers });
    assert.equal(res.statusCode, 404);
    assert.deepEqual(res.json(), { detail: 'Not Found' });
  });

  test('a body over 1 MiB is a 413', async () => {
    const payload = JSON.stringify({ trigger_word: 'T', sample_prompts: ['x'.repeat(1024 * 1024)] });
    const res = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: { ...headers, 'content-type': 'application/json' }, payload });
    assert.equal(res.statusCode, 413);
    assert.equal(typeof res.json<{ detail: unknown }>().detail, 'string');
  });

  test('broken JSON and a missing body are 422s at body', async () => {
    const broken = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: { ...headers, 'content-type': 'application/json' }, payload: '{"trigger_word":' });
    assert.equal(broken.statusCode, 422);
    assert.deepEqual(broken.json<HTTPValidationError>().detail[0].loc, ['body']);
    assert.equal(broken.json<HTTPValidationError>().detail[0].type, 'json_invalid');
    const empty = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: { ...headers, 'content-type': 'application/json' }, payload: '' });
    assert.equal(empty.statusCode, 422);
    assert.equal(empty.json<HTTPValidationError>().detail[0].type, 'missing');
    const notObject = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: [1, 2] as unknown as object });
    assert.equal(notObject.statusCode, 422);
  });

  test('every response carries a request id, and a given one is kept', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'req-42' } });
    assert.equal(res.headers['x-request-id'], 'req-42');
    const fresh = await h.app.inject({ method: 'GET', url: '/healthz' });
    assert.ok(fresh.headers['x-request-id']);
  });

  test('the OpenAPI document is 3.1 and names the seed schemas', async () => {
    const doc = (await h.app.inject({ method: 'GET', url: '/openapi.json' })).json<OpenApiDocument>();
    assert.match(doc.openapi, /^3\.1/);
    for (const name of [
      'TrainingTaskCreate',
      'TrainingTask',
      'HTTPValidationError',
      'ValidationError',
      'TrainingType',
      'EntityType',
      'TrainingStatus',
      'TaskPriority',
      'CaptioningStrategy',
    ]) {
      assert.ok(doc.components.schemas[name], name);
    }
    const create = doc.paths['/api/v1/training/'].post;
    assert.ok(create.responses['201']);
    assert.ok(create.responses['422']);
    assert.deepEqual(doc.components.securitySchemes.HTTPBearer, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    assert.deepEqual(doc.components.schemas.TrainingStatus.enum, ['PENDING', 'PREPROCESSING', 'QUEUED', 'TRAINING', 'COMPLETED', 'FAILED', 'CANCELLED']);
    assert.deepEqual(doc.components.schemas.TrainingTaskCreate.required, ['trigger_word']);
    const props = Object.keys(doc.components.schemas.TrainingTask.properties ?? {});
    for (const field of ['celery_chain_task_id', 'priority_changed_at', 'processed_dataset_path', 'eta_seconds']) assert.ok(props.includes(field), field);
  });
});
