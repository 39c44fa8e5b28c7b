import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { HTTPValidationError } from '../../src/domain/schemas/errors.js';
import type { Generation } from '../../src/domain/schemas/generations.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { taskFolder } from '../../src/domain/task-folder.js';
import pino from 'pino';
import { Worker } from '../../src/engine/worker.js';
import { generationPaths } from '../../src/generations/request.js';
import { generationStage } from '../../src/generations/stage.js';
import { openRun } from '../../src/store/stage-runs.js';
import { isoNow } from '../../src/util/time.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';
import { insertGeneration } from '../helpers/generations.js';
import { kindsOf } from '../helpers/kinds.js';
import { until } from '../helpers/processes.js';

for (const dialect of DIALECTS) {
  describe(`DELETE a task or a generation (${dialect})`, () => {
    let h: Harness;
    let headers: Record<string, string>;
    before(async () => {
      h = await openHarness(dialect);
      headers = await h.auth('acme');
    });
    after(() => h.close());

    const create = async () => {
      const res = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: { trigger_word: 'SNKR', source_images: ['https://example.com/a.jpg'] } });
      return res.json<TrainingTask>();
    };
    const setRow = (id: string, set: Record<string, unknown>) => h.runtime.store.db.updateTable('training_tasks').set(set).where('id', '=', id).execute();
    const del = (url: string, hdrs = headers) => h.app.inject({ method: 'DELETE', url, headers: hdrs });
    /** What a trained task leaves on disk and in the database besides its row. */
    const furnish = async (id: string) => {
      const folder = taskFolder(h.config.dataDir, id);
      for (const [file, body] of [
        ['sources/a.jpg', 'photo'],
        ['dataset/a.jpg', 'photo'],
        ['output/lora.safetensors', 'weights'],
        ['checkpoints/step_100/lora.safetensors', 'weights'],
        ['logs/trainer.log', 'log'],
      ]) {
        fs.mkdirSync(path.dirname(path.join(folder, file)), { recursive: true });
        fs.writeFileSync(path.join(folder, file), body);
      }
      await openRun(h.runtime.store, { jobId: id, kind: 'train', attempt: 0, workerId: 'w1', startedAt: Date.now(), tenantId: 'acme', slot: 'cpu' });
      await h.runtime.store.db
        .insertInto('webhook_deliveries')
        .values({
          id: `msg_${id}`,
          task_id: id,
          event_type: 'training.completed',
          url: 'https://hooks.example.com/',
          payload: '{}',
          status: 'delivered',
          attempts: 1,
          next_attempt_at: isoNow(),
          created_at: isoNow(),
        })
        .execute();
      return folder;
    };
    /** A COMPLETED task and a PENDING generation with its LoRA. */
    const loraInUse = async () => {
      const task = await create();
      await setRow(task.id, { status: 'COMPLETED', local_model_path: path.join(await furnish(task.id), 'output/lora.safetensors') });
      const payload = { prompt: 'a photo of [trigger]', loras: [{ training_task_id: task.id }] };
      const generation = (await h.app.inject({ method: 'POST', url: '/api/v1/generations/', headers, payload })).json<Generation>();
      return { task, generation };
    };
    const leftovers = async (id: string) => ({
      runs: (await h.runtime.store.db.selectFrom('stage_runs').select('id').where('task_id', '=', id).execute()).length,
      deliveries: (await h.runtime.store.db.selectFrom('webhook_deliveries').select('id').where('task_id', '=', id).execute()).length,
    });

    test('a finished task goes with its folder and webhook deliveries; its runs stay, for usage; its signed links stop working', async () => {
      const task = await create();
      const folder = await furnish(task.id);
      await setRow(task.id, { status: 'COMPLETED', local_model_path: path.join(folder, 'output/lora.safetensors') });
      const listing = await h.app.inject({ method: 'GET', url: `/api/v1/training/${task.id}/artifacts`, headers });
      const link = listing.json<{ path: string; url: string }[]>().find((a) => a.path === 'output/lora.safetensors')!.url;
      assert.equal((await h.app.inject({ method: 'GET', url: link })).statusCode, 200);

      const res = await del(`/api/v1/training/${task.id}`);
      assert.equal(res.statusCode, 204, res.body);
      assert.equal(res.body, '');
      assert.equal((await h.app.inject({ method: 'GET', url: `/api/v1/training/${task.id}`, headers })).statusCode, 404);
      assert.equal(fs.existsSync(folder), false);
      assert.deepEqual(fs.readdirSync(path.join(h.config.dataDir, '.trash')), []);
      assert.deepEqual(await leftovers(task.id), { runs: 1, deliveries: 0 }, 'the run stays: it is what usage is counted from (decision 0013)');
      assert.equal((await h.app.inject({ method: 'GET', url: link })).statusCode, 404);
      assert.equal((await del(`/api/v1/training/${task.id}`)).statusCode, 404);
    });

    test('a task that never made a folder is deleted too', async () => {
      const task = await create();
      assert.equal((await h.app.inject({ method: 'POST', url: `/api/v1/training/${task.id}/cancel`, headers })).statusCode, 200);
      assert.equal((await del(`/api/v1/training/${task.id}`)).statusCode, 204);
    });

    test('a waiting or running task is a 409 that says to cancel it; a cancelled one still stopping says to try again', async () => {
      const task = await create();
      const folder = await furnish(task.id);
      const pending = await del(`/api/v1/training/${task.id}`);
      assert.equal(pending.statusCode, 409);
      assert.equal(pending.json<{ detail: string }>().detail, 'Task is PENDING; cancel it first, then delete it');
      await setRow(task.id, { status: 'TRAINING', lease_owner: 'w1', lease_expires_at: isoNow(Date.now() + 30_000) });
      assert.match((await del(`/api/v1/training/${task.id}`)).json<{ detail: string }>().detail, /TRAINING; cancel it first/);
      await setRow(task.id, { status: 'CANCELLED' });
      const stopping = await del(`/api/v1/training/${task.id}`);
      assert.equal(stopping.statusCode, 409);
      assert.match(stopping.json<{ detail: string }>().detail, /still stopping on its worker/);
      assert.ok(fs.existsSync(path.join(folder, 'output/lora.safetensors')), 'a refused delete removes nothing');
      assert.deepEqual(await leftovers(task.id), { runs: 1, deliveries: 1 });
      await setRow(task.id, { lease_owner: null, lease_expires_at: null });
      assert.equal((await del(`/api/v1/training/${task.id}`)).statusCode, 204);
    });

    test("another tenant's task is a 404 and stays", async () => {
      const task = await create();
      await setRow(task.id, { status: 'FAILED' });
      const folder = await furnish(task.id);
      assert.equal((await del(`/api/v1/training/${task.id}`, await h.auth('globex'))).statusCode, 404);
      assert.ok(fs.existsSync(folder));
      assert.equal((await h.app.inject({ method: 'GET', url: `/api/v1/training/${task.id}`, headers })).statusCode, 200);
      assert.equal((await del(`/api/v1/training/${task.id}`, await h.auth('ops', { admin: true }))).statusCode, 204, 'an admin deletes any tenant’s');
    });

    test('a LoRA that a waiting generation will load cannot be deleted until that generation ends', async () => {
      const { task, generation } = await loraInUse();
      const refused = await del(`/api/v1/training/${task.id}`);
      assert.equal(refused.statusCode, 409);
      assert.equal(refused.json<{ detail: string }>().detail, `Generation ${generation.id} is PENDING with this task's LoRA; cancel it or let it finish, then delete the task`);
      assert.equal((await h.app.inject({ method: 'GET', url: `/api/v1/training/${task.id}`, headers })).statusCode, 200, 'the refusal rolled the delete back');
      assert.deepEqual(await leftovers(task.id), { runs: 1, deliveries: 1 });
      await h.app.inject({ method: 'POST', url: `/api/v1/generations/${generation.id}/cancel`, headers });
      assert.equal((await del(`/api/v1/training/${task.id}`)).statusCode, 204);
      assert.equal((await h.app.inject({ method: 'GET', url: `/api/v1/generations/${generation.id}`, headers })).statusCode, 200, 'the generation itself stays');
    });

    test('a generation retried after its LoRA was deleted fails saying so, without starting the generator', async () => {
      const { task, generation } = await loraInUse();
      const id = generation.id;
      await h.app.inject({ method: 'POST', url: `/api/v1/generations/${id}/cancel`, headers });
      assert.equal((await del(`/api/v1/training/${task.id}`)).statusCode, 204);
      assert.equal((await h.app.inject({ method: 'POST', url: `/api/v1/generations/${id}/retry`, headers })).statusCode, 200);

      const kinds = kindsOf(h.runtime.taskStore, h.runtime.generationStore, { generate: generationStage(h.config) });
      const worker = new Worker({
        store: h.runtime.store,
        config: h.config,
        kinds: [kinds.generate],
        log: pino({ level: 'silent' }),
        slots: { accelerator: [{ kind: 'cpu', index: 0 }], preprocess: 0 },
        pollMs: 50,
      });
      await worker.start();
      try {
        const failed = await until(async () => {
          const g = (await h.app.inject({ method: 'GET', url: `/api/v1/generations/${id}`, headers })).json<Generation>();
          return g.status === 'FAILED' && g;
        }, 'the generation fails');
        assert.equal(
          failed.error_message,
          `the LoRA of training task ${task.id} is gone (${path.join(taskFolder(h.config.dataDir, task.id), 'output/lora.safetensors')} does not exist): the task was deleted`,
        );
        assert.equal(fs.existsSync(generationPaths(h.config.dataDir, id).log), false, 'the generator never ran');
      } finally {
        await worker.stop();
      }
    });

    test('a retry and a delete racing: exactly one of them wins', async () => {
      for (let round = 0; round < 5; round++) {
        const task = await create();
        await setRow(task.id, { status: 'FAILED' });
        const [retry, deletion] = await Promise.all([h.app.inject({ method: 'POST', url: `/api/v1/training/${task.id}/retry`, headers }), del(`/api/v1/training/${task.id}`)]);
        const after = await h.app.inject({ method: 'GET', url: `/api/v1/training/${task.id}`, headers });
        if (deletion.statusCode === 204) {
          assert.equal(retry.statusCode, 404, retry.body);
          assert.equal(after.statusCode, 404);
        } else {
          assert.deepEqual([retry.statusCode, deletion.statusCode], [200, 409]);
          assert.equal(after.json<TrainingTask>().status, 'PENDING');
        }
      }
    });

    test('a finished generation goes with its images; a waiting one is a 409', async () => {
      const pending = await insertGeneration(h.runtime.generationStore);
      const waiting = await del(`/api/v1/generations/${pending.id}`);
      assert.equal(waiting.statusCode, 409);
      assert.equal(waiting.json<{ detail: string }>().detail, 'Generation is PENDING; cancel it first, then delete it');

      const done = await insertGeneration(h.runtime.generationStore, { status: 'COMPLETED', images: '["0.png"]' });
      const paths = generationPaths(h.config.dataDir, done.id);
      fs.mkdirSync(paths.images, { recursive: true });
      fs.writeFileSync(path.join(paths.images, '0.png'), 'png');
      assert.equal((await del(`/api/v1/generations/${done.id}`, await h.auth('globex'))).statusCode, 404);
      assert.ok(fs.existsSync(paths.root));
      assert.equal((await del(`/api/v1/generations/${done.id}`)).statusCode, 204);
      assert.equal(fs.existsSync(paths.root), false);
      assert.equal((await h.app.inject({ method: 'GET', url: `/api/v1/generations/${done.id}`, headers })).statusCode, 404);
      assert.equal((await h.app.inject({ method: 'GET', url: `/api/v1/generations/${done.id}/images/0.png`, headers })).statusCode, 404);
    });
  });
}

describe('DELETE an upload', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness('sqlite', { uploadRetentionHours: 48 });
  });
  after(() => h.close());

  const upload = async (headers: Record<string, string>) => {
    const boundary = '----kiln-delete-boundary';
    const payload = `--${boundary}\r\ncontent-disposition: form-data; name="files"; filename="IMG_0001.jpg"\r\ncontent-type: image/jpeg\r\n\r\nbytes\r\n--${boundary}--\r\n`;
    const res = await h.app.inject({ method: 'POST', url: '/api/v1/uploads/', headers: { ...headers, 'content-type': `multipart/form-data; boundary=${boundary}` }, payload });
    assert.equal(res.statusCode, 201, res.body);
    return res.json<{ uploads: { id: string; reference: string; created_at: string; expires_at: string | null }[] }>().uploads[0];
  };

  test('an upload says when it expires, and its tenant can delete it sooner, once', async () => {
    const headers = await h.auth('acme');
    const made = await upload(headers);
    assert.equal(Date.parse(made.expires_at!) - Date.parse(made.created_at), 48 * 3_600_000);
    assert.equal((await h.app.inject({ method: 'DELETE', url: `/api/v1/uploads/${made.id}`, headers: await h.auth('globex') })).statusCode, 404);
    const res = await h.app.inject({ method: 'DELETE', url: `/api/v1/uploads/${made.id}`, headers });
    assert.equal(res.statusCode, 204, res.body);
    assert.equal(fs.existsSync(path.join(h.config.dataDir, 'uploads', 'acme', made.id)), false);
    assert.equal((await h.app.inject({ method: 'DELETE', url: `/api/v1/uploads/${made.id}`, headers })).statusCode, 404);
    const malformed = await h.app.inject({ method: 'DELETE', url: '/api/v1/uploads/..%2Facme', headers });
    assert.equal(malformed.statusCode, 422);
  });

  test('a new task naming a deleted, expired or foreign upload is a 422 at that source', async () => {
    const headers = await h.auth('acme');
    const [kept, deleted] = [await upload(headers), await upload(headers)];
    await h.app.inject({ method: 'DELETE', url: `/api/v1/uploads/${deleted.id}`, headers });
    const create = (sources: string[], hdrs = headers) =>
      h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: hdrs, payload: { trigger_word: 'SNKR', source_images: sources } });
    const refused = await create([kept.reference, deleted.reference]);
    assert.equal(refused.statusCode, 422);
    assert.deepEqual(refused.json<HTTPValidationError>().detail, [
      {
        loc: ['body', 'source_images', 1],
        msg: `upload ${deleted.reference} not found: uploads are deleted 48 hours after they were made (KILN_UPLOAD_RETENTION_HOURS), or sooner by DELETE; an upload is usable only by the tenant that made it`,
        type: 'value_error',
      },
    ]);
    assert.equal((await create([kept.reference], await h.auth('globex'))).statusCode, 422, "another tenant's upload");
    assert.equal((await create([kept.reference])).statusCode, 201);
  });
});
