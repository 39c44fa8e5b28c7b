import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { buildApp } from '../../src/app.js';
import type { HTTPValidationError } from '../../src/domain/schemas/errors.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
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

  test('a body over 1 MiB is a 413 that states the limit', async () => {
    const payload = JSON.stringify({ trigger_word: 'T', sample_prompts: ['x'.repeat(1024 * 1024)] });
    const res = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: { ...headers, 'content-type': 'application/json' }, payload });
    assert.equal(res.statusCode, 413);
    assert.deepEqual(res.json(), { detail: 'Request body is larger than the limit of 1 MiB (1048576 bytes)' });
  });

  test('a webhook_url that is not a URL is a 422 at body.webhook_url, and an empty one still means none', async () => {
    for (const [url, body] of [
      ['/api/v1/training/', { trigger_word: 'T', webhook_url: 'not a url' }],
      ['/api/v1/generations/', { prompt: 'p', webhook_url: 'http://exa mple.com:99999/' }],
    ] as const) {
      const res = await h.app.inject({ method: 'POST', url, headers, payload: body });
      assert.equal(res.statusCode, 422, url);
      assert.deepEqual(res.json(), { detail: [{ loc: ['body', 'webhook_url'], msg: 'Input should be a valid URL', type: 'url_parsing' }] });
    }
    const empty = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: { trigger_word: 'T', webhook_url: '' } });
    assert.equal(empty.statusCode, 201);
  });

  test('a method the path does not have is a 405 with Allow, before authentication', async () => {
    for (const [method, url, allow] of [
      ['DELETE', '/api/v1/training/', 'GET, HEAD, POST'],
      ['DELETE', '/api/v1/training', 'GET, HEAD, POST'],
      ['PUT', '/api/v1/training/0b7f6a3e-51d8-4a7a-9d5e-2a1a9e4cfa11', 'DELETE, GET, HEAD'],
      ['GET', '/api/v1/training/0b7f6a3e-51d8-4a7a-9d5e-2a1a9e4cfa11/cancel?x=1', 'POST'],
      ['POST', '/api/v1/training/0b7f6a3e-51d8-4a7a-9d5e-2a1a9e4cfa11/artifacts/output/lora.safetensors', 'GET, HEAD'],
      // The router would hand this one to DELETE /generations/:generation_id with an empty id.
      ['DELETE', '/api/v1/generations/', 'GET, HEAD, POST'],
      // A method that takes a body, sent without one: routing answers before any parsing would.
      ['QUERY', '/api/v1/training/', 'GET, HEAD, POST'],
    ] as const) {
      for (const auth of [headers, {}]) {
        const res = await h.app.inject({ method, url, headers: auth });
        assert.equal(res.statusCode, 405, `${method} ${url}`);
        assert.equal(res.headers.allow, allow, `${method} ${url}`);
        assert.deepEqual(res.json(), { detail: 'Method Not Allowed' });
      }
    }
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

/** A multipart/form-data body with one file part per entry, as a client library would send it. */
function multipartFiles(files: [name: string, bytes: Buffer][]): { payload: Buffer; headers: Record<string, string> } {
  const boundary = '----kiln-test-boundary';
  const part = ([name, bytes]: [string, Buffer]) => [
    Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="files"; filename="${name}"\r\ncontent-type: image/png\r\n\r\n`),
    bytes,
    Buffer.from('\r\n'),
  ];
  const payload = Buffer.concat([...files.flatMap(part), Buffer.from(`--${boundary}--\r\n`)]);
  return { payload, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

function multipartFile(name: string, bytes: Buffer): { payload: Buffer; headers: Record<string, string> } {
  return multipartFiles([[name, bytes]]);
}

/** The uploads a tenant has stored, by their folder names. */
function storedUploads(h: Harness, tenant: string): string[] {
  const dir = path.join(h.config.dataDir, 'uploads', tenant);
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

describe('errors that blame the right party', () => {
  let h: Harness;
  let headers: Record<string, string>;
  before(async () => {
    h = await openHarness('sqlite', { maxDownloadBytes: 2048 });
    headers = await h.auth('acme');
  });
  after(() => h.close());

  test('a stored JSON column that does not parse is a 500, logged with the request id, not a 422', async () => {
    const lines: string[] = [];
    const app = await buildApp(h.runtime, { logger: { level: 'error', stream: { write: (line: string) => lines.push(line) } } });
    try {
      const created = await app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: { trigger_word: 'T' } });
      const id = created.json<TrainingTask>().id;
      await sql`update training_tasks set source_images = ${'["cut off'} where id = ${id}`.execute(h.runtime.store.db);

      const res = await app.inject({ method: 'GET', url: `/api/v1/training/${id}`, headers });
      assert.equal(res.statusCode, 500);
      assert.deepEqual(res.json(), { detail: 'Internal Server Error' });
      const logged = lines.map((line) => JSON.parse(line) as { reqId?: string; level: number; err?: { type: string } });
      const entry = logged.find((l) => l.reqId === res.headers['x-request-id']);
      assert.ok(entry, `no log line for request ${String(res.headers['x-request-id'])}: ${lines.join('')}`);
      assert.equal(entry.level, 50);
      assert.equal(entry.err?.type, 'SyntaxError');
    } finally {
      await app.close();
    }
  });

  test('an upload over KILN_MAX_DOWNLOAD_BYTES is a 413 that states the limit', async () => {
    const { payload, headers: form } = multipartFile('big.png', Buffer.alloc(5000, 1));
    const res = await h.app.inject({ method: 'POST', url: '/api/v1/uploads/', headers: { ...headers, ...form }, payload });
    assert.equal(res.statusCode, 413);
    assert.deepEqual(res.json(), {
      detail: '"big.png": file is larger than the limit of 2 KiB (2048 bytes) set by KILN_MAX_DOWNLOAD_BYTES; nothing past the limit was kept',
    });
    const small = multipartFile('small.png', Buffer.alloc(2048, 1));
    const ok = await h.app.inject({ method: 'POST', url: '/api/v1/uploads/', headers: { ...headers, ...small.headers }, payload: small.payload });
    assert.equal(ok.statusCode, 201);
  });

  test('a request refused partway keeps none of the files it sent before', async () => {
    const { payload, headers: form } = multipartFiles([
      ['fits.png', Buffer.alloc(1000, 1)],
      ['too-big.png', Buffer.alloc(5000, 1)],
    ]);
    const other = await h.auth('initech');
    const res = await h.app.inject({ method: 'POST', url: '/api/v1/uploads/', headers: { ...other, ...form }, payload });
    assert.equal(res.statusCode, 413, res.body);
    assert.match(res.json<{ detail: string }>().detail, /^"too-big\.png": file is larger/);
    assert.deepEqual(storedUploads(h, 'initech'), [], 'fits.png was stored, then removed with the request');
  });

  test('a multipart body without a boundary, or cut short, is a 400, not a 500', async () => {
    const bare = await h.app.inject({ method: 'POST', url: '/api/v1/uploads/', headers: { ...headers, 'content-type': 'multipart/form-data' }, payload: 'x' });
    assert.equal(bare.statusCode, 400);
    assert.match(bare.json<{ detail: string }>().detail, /boundary/);
    const { payload, headers: form } = multipartFile('cut.png', Buffer.alloc(100, 1));
    const cut = await h.app.inject({ method: 'POST', url: '/api/v1/uploads/', headers: { ...headers, ...form }, payload: payload.subarray(0, 150) });
    assert.equal(cut.statusCode, 400);
    assert.match(cut.json<{ detail: string }>().detail, /^Malformed multipart body/);
  });
});

describe('a data dir disk under KILN_MIN_FREE_DISK_MB', () => {
  let h: Harness;
  before(async () => {
    // More MiB than any disk has free: the real disk is "short" of it.
    h = await openHarness('sqlite', { minFreeDiskMb: 2 ** 40 });
  });
  after(() => h.close());

  test('refuses uploads with a 507 that says how much is free, and stores nothing', async () => {
    const { payload, headers: form } = multipartFile('photo.png', Buffer.alloc(1000, 1));
    const res = await h.app.inject({ method: 'POST', url: '/api/v1/uploads/', headers: { ...(await h.auth('acme')), ...form }, payload });
    assert.equal(res.statusCode, 507, res.body);
    assert.equal(res.headers['retry-after'], '300');
    assert.match(
      res.json<{ detail: string }>().detail,
      /^Uploads are refused while the data dir's disk has \d+ MiB free, under the 1099511627776 MiB it keeps \(KILN_MIN_FREE_DISK_MB\)$/,
    );
    assert.deepEqual(storedUploads(h, 'acme'), []);
  });

  test('creates still queue: the work waits for space rather than being lost', async () => {
    const res = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: await h.auth('acme'), payload: { trigger_word: 'T' } });
    assert.equal(res.statusCode, 201, res.body);
  });
});
