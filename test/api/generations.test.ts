import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPValidationError } from '../../src/domain/schemas/errors.js';
import type { Generation } from '../../src/domain/schemas/generations.js';
import { claimNext } from '../../src/engine/claim.js';
import { kindsOf } from '../helpers/kinds.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';

for (const dialect of DIALECTS) {
  describe(`POST /api/v1/generations (${dialect})`, () => {
    let h: Harness;
    let headers: Record<string, string>;
    before(async () => {
      h = await openHarness(dialect);
      headers = await h.auth('acme');
    });
    after(() => h.close());

    const done = (set: Record<string, unknown> = {}) =>
      insertTask(h.runtime.taskStore, { set: { status: 'COMPLETED', local_model_path: '/data/lora.safetensors', base_model_path: 'builtin:tiny-flux', ...set } });
    const claimGeneration = (workerId: string) =>
      claimNext(kindsOf(h.runtime.taskStore, h.runtime.generationStore).generate, { workerId, leaseSeconds: 30, maxRunningPerTenant: 0 });
    const post = (payload: object, hdrs = headers) => h.app.inject({ method: 'POST', url: '/api/v1/generations/', headers: hdrs, payload });

    test('queues a generation with a finished LoRA; the base model and trigger come from it', async () => {
      const task = await done({ trigger_word: 'MUGTOK' });
      const res = await post({ prompt: 'a photo of [trigger]', loras: [{ training_task_id: task.id, scale: 0.7 }], seed: 5 });
      assert.equal(res.statusCode, 202, res.body);
      const g = res.json<Generation>();
      assert.equal(g.status, 'PENDING');
      assert.equal(g.base_model_path, 'builtin:tiny-flux');
      assert.equal(g.prompt, 'a photo of MUGTOK');
      assert.deepEqual(g.loras, [{ training_task_id: task.id, scale: 0.7 }]);
      const got = await h.app.inject({ method: 'GET', url: `/api/v1/generations/${g.id}`, headers });
      assert.equal(got.json<Generation>().id, g.id);
      assert.equal((await h.app.inject({ method: 'GET', url: `/api/v1/generations/${g.id}`, headers: await h.auth('globex') })).statusCode, 404);
      const claimed = await claimGeneration('w1');
      assert.equal(claimed?.id, g.id);
      assert.equal(claimed?.status, 'RUNNING');
      assert.equal(await claimGeneration('w2'), undefined);
    });

    test('an unfinished task, a full fine-tune, another base model or another tenant is a 422 naming the LoRA', async () => {
      const running = await insertTask(h.runtime.taskStore, { set: { status: 'TRAINING' } });
      const full = await done({ training_type: 'FULL' });
      const tiny = await done();
      const other = await done({ base_model_path: 'black-forest-labs/FLUX.1-dev' });
      const foreign = await insertTask(h.runtime.taskStore, { tenant: 'globex', set: { status: 'COMPLETED', local_model_path: '/x' } });
      const res = await post({
        prompt: 'p',
        loras: [running, full, tiny, other, foreign].map((t) => ({ training_task_id: t.id })),
      });
      assert.equal(res.statusCode, 422);
      const { detail } = res.json<HTTPValidationError>();
      assert.deepEqual(
        detail.map((d) => d.loc),
        [0, 1, 3, 4].map((i) => ['body', 'loras', i, 'training_task_id']),
      );
      assert.match(detail[0].msg, /TRAINING; only a COMPLETED/);
      assert.match(detail[1].msg, /FULL fine-tune/);
      assert.match(detail[2].msg, /trained on black-forest-labs\/FLUX.1-dev, not builtin:tiny-flux/);
      assert.match(detail[3].msg, /not found/);
    });

    test('sizes and counts are checked', async () => {
      const res = await post({ prompt: '', width: 100, num_images: 9 });
      assert.equal(res.statusCode, 422);
      const locs = res.json<HTTPValidationError>().detail.map((d) => d.loc.join('.'));
      assert.ok(locs.includes('body.prompt') && locs.includes('body.width') && locs.includes('body.num_images'), locs.join());
    });

    test('a webhook_url to a private or metadata address, or not a URL, is a 422 at body.webhook_url', async () => {
      for (const webhook_url of ['http://169.254.169.254/latest', 'http://127.0.0.1:9/hook', 'not a url']) {
        const res = await post({ prompt: 'p', webhook_url });
        assert.equal(res.statusCode, 422, webhook_url);
        const [issue] = res.json<HTTPValidationError>().detail;
        assert.deepEqual(issue.loc, ['body', 'webhook_url'], webhook_url);
      }
    });
  });
}
