import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPError, HTTPValidationError } from '../../src/domain/schemas/errors.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';

for (const dialect of DIALECTS) {
  describe(`POST /api/v1/training/ (${dialect})`, () => {
    let h: Harness;
    let headers: Record<string, string>;
    before(async () => {
      h = await openHarness(dialect);
      headers = await h.auth('acme');
    });
    after(() => h.close());

    const create = (payload: unknown) => h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: payload as object });

    test('fills every default of TrainingTaskCreate and TrainingTask', async () => {
      const res = await create({ trigger_word: 'SNKR' });
      assert.equal(res.statusCode, 201);
      const t = res.json<TrainingTask>();
      const expected = {
        training_type: 'LORA',
        entity_type: 'PRODUCT',
        entity_id: null,
        trigger_word: 'SNKR',
        rank: 16,
        steps: 1000,
        total_steps: 1000,
        learning_rate: 0.0001,
        sample_prompts: [],
        source_images: [],
        base_model_path: 'black-forest-labs/FLUX.1-dev',
        bypass_guidance_embedding: false,
        webhook_url: '',
        origin_instance: 'unknown',
        origin_zone: null,
        origin_version: null,
        origin_tenant_id: 'acme',
        preprocessing_transforms: null,
        preprocessing_captioning_strategy: 'trigger_only',
        preprocessing_captioning_prompt: null,
        status: 'PENDING',
        progress: 0,
        current_step: 0,
        eta_seconds: null,
        save_every: 2000,
        max_step_saves_to_keep: 4,
        batch_size: 1,
        gradient_accumulation: 1,
        optimizer: 'adamw8bit',
        local_model_path: null,
        sample_every: 250,
        sample_steps: 25,
        started_at: null,
        completed_at: null,
        logs: '',
        error_message: null,
        celery_training_task_id: null,
        celery_preprocessing_task_id: null,
        preprocessing_stage: null,
        processed_files_count: null,
        total_files_count: null,
        preprocessing_started_at: null,
        preprocessing_completed_at: null,
        processed_dataset_path: null,
        priority: 1,
        priority_changed_at: null,
      };
      const fields: Record<string, unknown> = t;
      for (const [key, value] of Object.entries(expected)) assert.deepEqual(fields[key], value, key);
      assert.match(t.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.match(t.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(t.created_at, t.updated_at);
      assert.ok(t.training_folder.endsWith(`tasks/${t.id}`));
    });

    test('explicit nulls mean the defaults, as the seed Optional fields did', async () => {
      const res = await create({
        trigger_word: 'X',
        rank: null,
        steps: null,
        learning_rate: null,
        sample_prompts: null,
        source_images: null,
        base_model_path: null,
        bypass_guidance_embedding: null,
        origin_instance: null,
        preprocessing_captioning_strategy: null,
      });
      assert.equal(res.statusCode, 201);
      const t = res.json<TrainingTask>();
      assert.equal(t.rank, 16);
      assert.equal(t.steps, 1000);
      assert.equal(t.learning_rate, 0.0001);
      assert.deepEqual(t.sample_prompts, []);
      assert.equal(t.base_model_path, 'black-forest-labs/FLUX.1-dev');
      assert.equal(t.origin_instance, 'unknown');
      assert.equal(t.preprocessing_captioning_strategy, 'trigger_only');
    });

    test('keeps every given field and ignores unknown ones', async () => {
      const entity = '0b7f6a3e-51d8-4a7a-9d5e-2a1a9e4cfa11';
      const res = await create({
        training_type: 'FULL',
        entity_type: 'STYLE',
        entity_id: entity,
        trigger_word: 'ohwx style',
        rank: 32,
        steps: 500,
        learning_rate: 0.0004,
        sample_prompts: ['a [trigger] cat'],
        source_images: ['https://example.com/a.jpg'],
        base_model_path: 'builtin:tiny-flux',
        bypass_guidance_embedding: true,
        origin_instance: 'staging',
        origin_zone: 'eu',
        origin_version: '2.3.1',
        preprocessing_transforms: [{ type: 'grayscale' }],
        preprocessing_captioning_strategy: 'template',
        preprocessing_captioning_prompt: 'a photo of [trigger]',
        save_every: 100,
        sample_every: 50,
        surprise_field: { nested: true },
      });
      assert.equal(res.statusCode, 201, res.body);
      const t = res.json<TrainingTask>();
      assert.equal(t.training_type, 'FULL');
      assert.equal(t.entity_type, 'STYLE');
      assert.equal(t.entity_id, entity);
      assert.equal(t.rank, 32);
      assert.equal(t.total_steps, 500);
      assert.equal(t.learning_rate, 0.0004);
      assert.deepEqual(t.source_images, ['https://example.com/a.jpg']);
      assert.equal(t.bypass_guidance_embedding, true);
      assert.equal(t.origin_zone, 'eu');
      assert.deepEqual(t.preprocessing_transforms, [{ type: 'grayscale' }]);
      assert.equal(t.save_every, 100);
      assert.equal(t.sample_every, 50);
      assert.equal('surprise_field' in t, false);
    });

    // [field, value at the edge (accepted), value past it (refused), pydantic error type]
    const limits: [string, unknown, unknown, string][] = [
      ['trigger_word', 'x'.repeat(64), 'x'.repeat(65), 'string_too_long'],
      ['trigger_word', 'x', '', 'string_too_short'],
      ['trigger_word', 'tab-free', 'new\nline', 'string_pattern_mismatch'],
      ['trigger_word', ' ohwx style ', '   ', 'string_pattern_mismatch'],
      ['rank', 1, 0, 'greater_than_equal'],
      ['rank', 256, 257, 'less_than_equal'],
      ['steps', 1, 0, 'greater_than_equal'],
      ['steps', 100000, 100001, 'less_than_equal'],
      ['learning_rate', 1, 1.0000001, 'less_than_equal'],
      ['learning_rate', 1e-9, 0, 'greater_than'],
      ['sample_prompts', Array(50).fill('p'), Array(51).fill('p'), 'too_long'],
      ['sample_prompts', ['p'.repeat(2000)], ['p'.repeat(2001)], 'string_too_long'],
      ['source_images', ['https://example.com/1.jpg'], [], 'too_short'],
      ['source_images', Array(1000).fill('https://example.com/1.jpg'), Array(1001).fill('https://example.com/1.jpg'), 'too_long'],
      ['sample_every', 1, 0, 'greater_than_equal'],
      ['save_every', 1, 0, 'greater_than_equal'],
      ['training_type', 'FULL', 'HALF', 'enum'],
      ['entity_type', 'SUBJECT', 'PERSON', 'enum'],
      ['preprocessing_captioning_strategy', 'provided', 'magic', 'enum'],
      ['entity_id', '0b7f6a3e-51d8-4a7a-9d5e-2a1a9e4cfa11', 'not-a-uuid', 'uuid_parsing'],
      ['rank', 8, 'eight', 'int_type'],
      ['bypass_guidance_embedding', true, 'maybe', 'bool_type'],
    ];
    for (const [field, ok, bad, type] of limits) {
      test(`${field}: ${JSON.stringify(ok).slice(0, 30)} accepted, ${JSON.stringify(bad).slice(0, 30)} is a 422 ${type}`, async () => {
        const good = await create({ trigger_word: 'T', [field]: ok });
        assert.equal(good.statusCode, 201, good.body);
        const res = await create({ trigger_word: 'T', [field]: bad });
        assert.equal(res.statusCode, 422);
        const issue = res.json<HTTPValidationError>().detail.find((d) => d.loc[1] === field);
        assert.ok(issue, res.body);
        assert.equal(issue.loc[0], 'body');
        assert.equal(issue.type, type);
        assert.equal(typeof issue.msg, 'string');
      });
    }

    test('a missing trigger_word is named as missing', async () => {
      const res = await create({ rank: 4 });
      assert.equal(res.statusCode, 422);
      assert.deepEqual(res.json(), { detail: [{ loc: ['body', 'trigger_word'], msg: 'Field required', type: 'missing' }] });
    });

    test('every problem of a body is reported at once', async () => {
      const res = await create({ rank: 0, steps: -1 });
      const locs = res.json<HTTPValidationError>().detail.map((d) => d.loc.join('.'));
      assert.deepEqual(locs.sort(), ['body.rank', 'body.steps', 'body.trigger_word']);
    });

    test('an error inside a list names its index', async () => {
      const res = await create({ trigger_word: 'T', sample_prompts: ['ok', 7] });
      assert.equal(res.statusCode, 422);
      assert.deepEqual(res.json<HTTPValidationError>().detail[0].loc, ['body', 'sample_prompts', 1]);
    });

    test('setting a priority needs the admin scope', async () => {
      const res = await create({ trigger_word: 'T', priority: 3 });
      assert.equal(res.statusCode, 403);
      assert.match(res.json<HTTPError>().detail, /training:admin/);
      const admin = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: await h.auth('acme', { admin: true }), payload: { trigger_word: 'T', priority: 3 } });
      assert.equal(admin.statusCode, 201);
      assert.equal(admin.json<TrainingTask>().priority, 3);
    });

    test('a webhook_url that is not an http(s) URL is a 422', async () => {
      const res = await create({ trigger_word: 'T', webhook_url: 'ftp://example.com/hook' });
      assert.equal(res.statusCode, 422);
      assert.deepEqual(res.json<HTTPValidationError>().detail[0].loc, ['body', 'webhook_url']);
    });
  });
}

describe('KILN_DEFAULT_BASE_MODEL', () => {
  test('is the base model of a task that names none (absent or null); a named one is kept', async () => {
    const h = await openHarness('sqlite', { defaultBaseModel: 'builtin:tiny-flux' });
    try {
      const headers = await h.auth('acme');
      const create = (payload: object) => h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload });
      assert.equal((await create({ trigger_word: 'A' })).json<TrainingTask>().base_model_path, 'builtin:tiny-flux');
      assert.equal((await create({ trigger_word: 'B', base_model_path: null })).json<TrainingTask>().base_model_path, 'builtin:tiny-flux');
      assert.equal((await create({ trigger_word: 'C', base_model_path: 'black-forest-labs/FLUX.1-dev' })).json<TrainingTask>().base_model_path, 'black-forest-labs/FLUX.1-dev');
      const malformed = await create({ trigger_word: 'D', base_model_path: 7 });
      assert.equal(malformed.statusCode, 422);
    } finally {
      await h.close();
    }
  });
});
