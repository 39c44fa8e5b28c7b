import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openHarness, type Harness } from '../helpers/harness.js';

interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  schema: { default?: unknown };
}

interface Operation {
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: Record<string, unknown> }> };
  responses: Record<string, { description: string; headers?: Record<string, unknown>; content?: Record<string, { schema: Record<string, unknown> }> }>;
}

interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { properties: Record<string, Record<string, unknown>> }> };
}

const TASK = '/api/v1/training/{task_id}';
const GENERATION = '/api/v1/generations/{generation_id}';

/** Every documented operation and the statuses it can answer, successes included. */
const STATUSES: Record<string, number[]> = {
  'post /api/v1/training/': [201, 401, 403, 413, 415, 422, 429, 503],
  'get /api/v1/training/': [200, 401, 422, 503],
  [`get ${TASK}`]: [200, 401, 404, 422, 503],
  [`delete ${TASK}`]: [204, 401, 404, 409, 422, 503],
  [`post ${TASK}/cancel`]: [200, 401, 404, 409, 413, 415, 422, 503],
  [`post ${TASK}/retry`]: [200, 401, 404, 409, 413, 415, 422, 503],
  [`patch ${TASK}/priority`]: [200, 401, 403, 404, 413, 415, 422, 503],
  [`get ${TASK}/webhooks`]: [200, 401, 404, 422, 503],
  [`delete ${TASK}/photos`]: [200, 401, 404, 409, 422, 503],
  [`get ${TASK}/runs`]: [200, 401, 404, 422, 503],
  [`get ${TASK}/logs`]: [200, 401, 404, 422, 503],
  [`get ${TASK}/metrics`]: [200, 401, 404, 422, 503],
  [`get ${TASK}/queue`]: [200, 401, 404, 422, 503],
  [`get ${TASK}/events`]: [200, 401, 404, 422, 503],
  [`get ${TASK}/artifacts`]: [200, 401, 404, 422, 503],
  [`get ${TASK}/artifacts/{*}`]: [200, 206, 401, 403, 404, 416, 422, 503],
  'post /api/v1/uploads/': [201, 400, 401, 413, 415, 429, 507],
  'delete /api/v1/uploads/{upload_id}': [204, 401, 404, 422],
  'post /api/v1/generations/': [202, 401, 413, 415, 422, 429, 503],
  'get /api/v1/generations/': [200, 401, 422, 503],
  'get /api/v1/usage/': [200, 401, 422, 503],
  'delete /api/v1/entities/{entity_id}': [200, 401, 422, 503],
  [`get ${GENERATION}`]: [200, 401, 404, 422, 503],
  [`delete ${GENERATION}`]: [204, 401, 404, 409, 422, 503],
  [`get ${GENERATION}/images/{name}`]: [200, 401, 404, 422, 503],
  [`get ${GENERATION}/queue`]: [200, 401, 404, 422, 503],
  [`post ${GENERATION}/cancel`]: [200, 401, 404, 409, 413, 415, 422, 503],
  [`post ${GENERATION}/retry`]: [200, 401, 404, 409, 413, 415, 422, 503],
  [`get ${GENERATION}/events`]: [200, 401, 404, 422, 503],
};

describe('the OpenAPI document', () => {
  let h: Harness;
  let doc: OpenApiDocument;
  before(async () => {
    h = await openHarness('sqlite');
    doc = (await h.app.inject({ method: 'GET', url: '/openapi.json' })).json<OpenApiDocument>();
  });
  after(() => h.close());

  const operation = (method: string, path: string): Operation => {
    const op = doc.paths[path]?.[method];
    assert.ok(op, `${method} ${path} is documented`);
    return op;
  };

  test('documents each status every operation can answer, errors in FastAPI shapes', () => {
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method} ${path}`));
    assert.deepEqual(documented.sort(), Object.keys(STATUSES).sort());
    for (const [key, statuses] of Object.entries(STATUSES)) {
      const [method, path] = key.split(' ');
      const { responses } = operation(method, path);
      assert.deepEqual(Object.keys(responses).map(Number), statuses, key);
      for (const status of statuses.filter((s) => s >= 400)) {
        const schema = responses[status].content?.['application/json'].schema;
        const name = status === 422 ? 'HTTPValidationError' : 'HTTPError';
        assert.deepEqual(schema, { $ref: `#/components/schemas/${name}` }, `${key} ${status}`);
        assert.notEqual(responses[status].description, 'Default Response', `${key} ${status} says why`);
      }
      for (const status of [429, 503].filter((s) => statuses.includes(s))) assert.ok(responses[status].headers?.['retry-after'], `${key} ${status} has Retry-After`);
      if (statuses.includes(204)) assert.equal(responses[204].content, undefined, `${key} 204 has no body`);
    }
  });

  test('skip and limit are optional, with the seed defaults', () => {
    const params = operation('get', '/api/v1/training/').parameters ?? [];
    for (const [name, value] of [
      ['skip', 0],
      ['limit', 10],
    ] as const) {
      const param = params.find((p) => p.name === name && p.in === 'query');
      assert.ok(param, name);
      assert.notEqual(param.required, true, `${name} is optional`);
      assert.equal(param.schema.default, value, `${name} defaults to ${value}`);
    }
    const offset = (operation('get', `${TASK}/logs`).parameters ?? []).find((p) => p.name === 'offset');
    assert.notEqual(offset?.required, true, 'offset is optional');
  });

  test('webhook_url is a nullable uri, written as the seed writes nullables', () => {
    for (const schema of ['TrainingTaskCreate', 'GenerationCreate']) {
      const webhook = doc.components.schemas[schema].properties.webhook_url;
      assert.deepEqual(webhook.anyOf, [{ type: 'string', maxLength: 2048, format: 'uri' }, { type: 'null' }], schema);
      assert.equal(webhook.title, 'Webhook Url');
    }
    assert.deepEqual(doc.components.schemas.TrainingTaskCreate.properties.entity_id, {
      anyOf: [{ type: 'string', format: 'uuid' }, { type: 'null' }],
      title: 'Entity Id',
    });
  });

  test('uploads declare their multipart/form-data body', () => {
    const body = operation('post', '/api/v1/uploads/').requestBody;
    assert.deepEqual(Object.keys(body?.content ?? {}), ['multipart/form-data']);
    const schema = body?.content['multipart/form-data'].schema as {
      required: string[];
      properties: { files: { type: string; items: unknown; minItems: number; description: string } };
    };
    assert.deepEqual(schema.required, ['files']);
    assert.equal(schema.properties.files.type, 'array');
    assert.deepEqual(schema.properties.files.items, { type: 'string', format: 'binary' });
    assert.equal(schema.properties.files.minItems, 1);
    assert.match(schema.properties.files.description, /^Images \(JPEG, PNG, WebP, AVIF, HEIC, TIFF, GIF\) or \.zip archives/, 'the formats preprocessing takes');
  });

  test('streams and files are documented in their own media types', () => {
    for (const path of [`${TASK}/events`, `${GENERATION}/events`]) {
      assert.deepEqual(Object.keys(operation('get', path).responses['200'].content ?? {}), ['text/event-stream'], path);
    }
    assert.deepEqual(Object.keys(operation('get', `${GENERATION}/images/{name}`).responses['200'].content ?? {}), ['image/png']);
    assert.deepEqual(Object.keys(operation('get', `${TASK}/artifacts/{*}`).responses['206'].content ?? {}), ['*/*']);
  });
});
