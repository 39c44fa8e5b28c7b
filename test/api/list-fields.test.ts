import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPValidationError } from '../../src/domain/schemas/errors.js';
import { TASK_FIELDS, type TrainingTask } from '../../src/domain/schemas/training.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';

const LOGS = 'x'.repeat(64 * 1024);
/** Text a JSON writer must escape, and a character outside the BMP. */
const AWKWARD = 'quote " backslash \\ newline \n tab \t bell \u0007 nul-free, é, 🔥, </script>';

for (const dialect of DIALECTS) {
  describe(`GET /api/v1/training/?fields= (${dialect})`, () => {
    let h: Harness;
    let headers: Record<string, string>;
    before(async () => {
      h = await openHarness(dialect);
      headers = await h.auth('acme');
      const start = Date.now() - 10_000;
      for (let i = 0; i < 5; i++) {
        await insertTask(h.runtime.taskStore, {
          createdAt: start + i,
          set: {
            status: i === 4 ? 'TRAINING' : 'COMPLETED',
            progress: i * 10.5,
            eta_seconds: i === 4 ? 120 : null,
            logs: LOGS,
            bypass_guidance_embedding: 1,
            sample_prompts: JSON.stringify([`p${i}`]),
            preprocessing_transforms: i === 3 ? null : JSON.stringify([{ type: 'resize', size: 512 }]),
            // Floats whose shortest text differs between writers (1e-05, 0.30000000000000004).
            learning_rate: i === 2 ? 1e-5 : 0.1 + 0.2,
            error_message: i === 1 ? AWKWARD : null,
            trigger_word: i === 0 ? AWKWARD : `T${i}`,
          },
        });
      }
    });
    after(() => h.close());

    const list = (query: string) => h.app.inject({ method: 'GET', url: `/api/v1/training/${query}`, headers });

    test('each task holds only the named fields, in the seed order, with the same values as the full list', async () => {
      const full = (await list('?limit=100')).json<TrainingTask[]>();
      const res = await list('?limit=100&fields=eta_seconds,progress,status,id');
      assert.equal(res.statusCode, 200);
      const narrow = res.json<Partial<TrainingTask>[]>();
      assert.equal(narrow.length, 5);
      assert.deepEqual(
        narrow,
        full.map((t) => ({ id: t.id, status: t.status, progress: t.progress, eta_seconds: t.eta_seconds })),
      );
      assert.deepEqual(Object.keys(narrow[0]), ['id', 'status', 'progress', 'eta_seconds']);
      assert.deepEqual(narrow[0], { id: full[0].id, status: 'TRAINING', progress: 42, eta_seconds: 120 });
      assert.ok(res.body.length < 1000, `a narrow page of 5 is small, got ${res.body.length} bytes`);
    });

    test('converted fields are converted as in the full task', async () => {
      const [task] = (await list('?limit=1&fields=bypass_guidance_embedding,sample_prompts,source_images,preprocessing_transforms')).json<Partial<TrainingTask>[]>();
      assert.deepEqual(task, {
        bypass_guidance_embedding: true,
        sample_prompts: ['p4'],
        source_images: ['https://example.com/a.jpg'],
        preprocessing_transforms: [{ type: 'resize', size: 512 }],
      });
    });

    test('paging and filters apply as without fields', async () => {
      const full = (await list('?skip=1&limit=2&status=COMPLETED')).json<TrainingTask[]>();
      const narrow = (await list('?skip=1&limit=2&status=COMPLETED&fields=id')).json<Partial<TrainingTask>[]>();
      assert.deepEqual(
        narrow,
        full.map((t) => ({ id: t.id })),
      );
      assert.equal(narrow.length, 2);
    });

    test('the store reads only the named columns', async () => {
      const store = h.runtime.taskStore;
      const scope = { tenantId: 'acme', all: false };
      const narrow = store.listQuery(scope, { limit: 2 }, ['id', 'progress']).compile().sql;
      assert.doesNotMatch(narrow, /logs|status|sample_prompts/);
      assert.match(store.listQuery(scope, { limit: 2 }, TASK_FIELDS).compile().sql, /"logs"/);
      const rows = await store.list(scope, { limit: 2 }, ['id', 'progress']);
      assert.equal(rows.length, 2);
      for (const row of rows) assert.deepEqual(Object.keys(row), ['id', 'progress']);
    });

    test('without fields every item is the whole TrainingTask, byte for byte as GET /{id} sends it', async () => {
      const res = await list('?limit=100');
      const items = res.json<TrainingTask[]>();
      assert.equal(items.length, 5);
      for (const item of items) {
        assert.deepEqual(Object.keys(item), TASK_FIELDS);
        const one = await h.app.inject({ method: 'GET', url: `/api/v1/training/${item.id}`, headers });
        assert.ok(res.body.includes(one.body), `list item ${item.id} differs from GET /{id}`);
        assert.equal(res.headers['content-type'], one.headers['content-type']);
      }
      assert.equal(items[0].logs, LOGS);
      assert.equal(items[4].trigger_word, AWKWARD);
      assert.equal(items[3].error_message, AWKWARD);
      assert.equal(items[1].preprocessing_transforms, null);
      assert.equal(items[2].learning_rate, 1e-5);
      assert.equal(items[0].learning_rate, 0.1 + 0.2);
    });

    test('an unknown or empty field name is a 422 at query.fields', async () => {
      for (const query of ['?fields=id,nope', '?fields=', '?fields=id,', '?fields=lease_owner', '?fields=id status']) {
        const res = await list(query);
        assert.equal(res.statusCode, 422, query);
        const [issue] = res.json<HTTPValidationError>().detail;
        assert.deepEqual(issue.loc, ['query', 'fields'], query);
        assert.equal(issue.type, 'string_pattern_mismatch', query);
      }
    });
  });
}

describe('paging bounds', () => {
  test('a skip past what a JSON number holds exactly is a 422 at query.skip, not a database error', async () => {
    const h = await openHarness('sqlite');
    try {
      const headers = await h.auth('acme');
      const ok = await h.app.inject({ method: 'GET', url: `/api/v1/training/?skip=${Number.MAX_SAFE_INTEGER}`, headers });
      assert.equal(ok.statusCode, 200);
      assert.deepEqual(ok.json(), []);
      const res = await h.app.inject({ method: 'GET', url: '/api/v1/training/?skip=99999999999999999999', headers });
      assert.equal(res.statusCode, 422);
      assert.deepEqual(
        res.json<HTTPValidationError>().detail.map((i) => [i.loc, i.type]),
        [[['query', 'skip'], 'less_than_equal']],
      );
    } finally {
      await h.close();
    }
  });
});

describe('the list in the OpenAPI document', () => {
  test('skip and limit are optional with the seed defaults, fields is documented', async () => {
    const h = await openHarness('sqlite');
    try {
      const doc = (await h.app.inject({ method: 'GET', url: '/openapi.json' })).json<{
        paths: Record<string, Record<string, { parameters: { name: string; in: string; required?: boolean; schema: { default?: unknown; pattern?: string } }[] }>>;
      }>();
      const params = Object.fromEntries(doc.paths['/api/v1/training/'].get.parameters.filter((p) => p.in === 'query').map((p) => [p.name, p]));
      assert.equal(params.skip.required ?? false, false);
      assert.equal(params.skip.schema.default, 0);
      assert.equal(params.limit.required ?? false, false);
      assert.equal(params.limit.schema.default, 10);
      assert.equal(params.fields.required ?? false, false);
      assert.ok(new RegExp(params.fields.schema.pattern!).test('id,status,progress,eta_seconds'));
      assert.ok(!new RegExp(params.fields.schema.pattern!).test('id,nope'));
    } finally {
      await h.close();
    }
  });
});
