import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPValidationError } from '../../src/domain/schemas/errors.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import type { TrainingTaskRow } from '../../src/store/db.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';

for (const dialect of DIALECTS) {
  describe(`init_lora_task_id: a task continues another's LoRA (${dialect})`, () => {
    let h: Harness;
    let headers: Record<string, string>;
    before(async () => {
      h = await openHarness(dialect);
      headers = await h.auth('acme');
    });
    after(() => h.close());

    const lora = (set: Partial<TrainingTaskRow> = {}, tenant = 'acme') =>
      insertTask(h.runtime.taskStore, { tenant, set: { status: 'COMPLETED', local_model_path: '/data/lora.safetensors', base_model_path: 'builtin:tiny-flux', rank: 16, ...set } });
    const create = (body: Record<string, unknown>) =>
      h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: { trigger_word: 'MORE', base_model_path: 'builtin:tiny-flux', ...body } });

    test('a COMPLETED LoRA of the same base model and rank is continued, and the task says which', async () => {
      const source = await lora();
      const res = await create({ init_lora_task_id: source.id });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.json<TrainingTask>().init_lora_task_id, source.id);
      const plain = await create({});
      assert.equal(plain.json<TrainingTask>().init_lora_task_id, null);
    });

    test('anything else is a 422 at body.init_lora_task_id that says why', async () => {
      const cases: [Record<string, unknown>, RegExp][] = [
        [{ init_lora_task_id: '0b7f6a3e-51d8-4a7a-9d5e-2a1a9e4cfa11' }, /not found/],
        [{ init_lora_task_id: (await lora({}, 'globex')).id }, /not found/],
        [{ init_lora_task_id: (await lora({ status: 'TRAINING', local_model_path: null })).id }, /is TRAINING; only a COMPLETED task's LoRA can be continued/],
        [{ init_lora_task_id: (await lora({ training_type: 'FULL' })).id }, /is a FULL fine-tune, not a LoRA/],
        [{ init_lora_task_id: (await lora()).id, training_type: 'FULL' }, /only a LORA task continues a LoRA/],
        [{ init_lora_task_id: (await lora({ base_model_path: 'black-forest-labs/FLUX.1-dev' })).id }, /was trained on black-forest-labs\/FLUX\.1-dev, not builtin:tiny-flux/],
        [{ init_lora_task_id: (await lora()).id, rank: 8 }, /has rank 16, not 8: set rank to 16 to continue it/],
        [{ init_lora_task_id: 'not-a-uuid' }, /valid UUID/],
      ];
      for (const [body, msg] of cases) {
        const res = await create(body);
        assert.equal(res.statusCode, 422, `${JSON.stringify(body)}: ${res.body}`);
        const [issue, ...more] = res.json<HTTPValidationError>().detail;
        assert.deepEqual(issue.loc, ['body', 'init_lora_task_id'], JSON.stringify(body));
        assert.match(issue.msg, msg);
        assert.deepEqual(more, []);
      }
      const both = await create({ init_lora_task_id: (await lora()).id, rank: 8, webhook_url: 'http://127.0.0.1:9/hook' });
      assert.deepEqual(
        both.json<HTTPValidationError>().detail.map((d) => d.loc.join('.')),
        ['body.webhook_url', 'body.init_lora_task_id'],
        'reported with the other issues at once',
      );
    });

    test('the LoRA cannot be deleted while a task waits to continue it', async () => {
      const source = await lora();
      const next = (await create({ init_lora_task_id: source.id })).json<TrainingTask>();
      const del = () => h.app.inject({ method: 'DELETE', url: `/api/v1/training/${source.id}`, headers });
      const refused = await del();
      assert.equal(refused.statusCode, 409);
      assert.match(refused.json<{ detail: string }>().detail, new RegExp(`^Task ${next.id} is PENDING and continues from this task's LoRA`));
      assert.equal((await h.app.inject({ method: 'POST', url: `/api/v1/training/${next.id}/cancel`, headers })).statusCode, 200);
      assert.equal((await del()).statusCode, 204, 'once it is finished, the LoRA it would have copied may go');
    });
  });
}
