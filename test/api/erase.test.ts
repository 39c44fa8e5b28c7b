import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import type { EntityErasure } from '../../src/domain/schemas/entities.js';
import { taskFolder } from '../../src/domain/task-folder.js';
import { saveUpload } from '../../src/preprocess/index.js';
import type { TrainingTaskRow } from '../../src/store/db.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';
import { insertGeneration } from '../helpers/generations.js';
import { insertTask } from '../helpers/tasks.js';

const PERSON = '0193a6c0-0000-7000-8000-00000000e001';
const SOMEONE_ELSE = '0193a6c0-0000-7000-8000-00000000e002';

for (const dialect of DIALECTS) {
  describe(`DELETE /api/v1/entities/{entity_id} (${dialect})`, () => {
    let h: Harness;
    let acme: Record<string, string>;
    const erase = async (entity = PERSON, headers = acme) => {
      const res = await h.app.inject({ method: 'DELETE', url: `/api/v1/entities/${entity}`, headers });
      assert.equal(res.statusCode, 200, res.body);
      return res.json<EntityErasure>();
    };
    /** A task of the entity with a folder on disk, as one that ran would have. */
    const task = async (entity: string, set: Partial<TrainingTaskRow>, tenant = 'acme') => {
      const row = await insertTask(h.runtime.taskStore, { tenant, set: { entity_id: entity, ...set } });
      fs.mkdirSync(path.join(taskFolder(h.config.dataDir, row.id), 'output'), { recursive: true });
      fs.writeFileSync(path.join(taskFolder(h.config.dataDir, row.id), 'output', 'lora.safetensors'), 'weights');
      return row;
    };
    const withLoras = (...ids: string[]) => ({
      request: JSON.stringify({
        prompt: 'a photo',
        loras: ids.map((training_task_id) => ({ training_task_id, scale: 1 })),
        width: 64,
        height: 64,
        steps: 2,
        seed: 1,
        num_images: 1,
      }),
    });
    const exists = async (kind: 'training' | 'generations', id: string, headers = acme) =>
      (await h.app.inject({ method: 'GET', url: `/api/v1/${kind}/${id}`, headers })).statusCode === 200;

    before(async () => {
      h = await openHarness(dialect);
      acme = await h.auth('acme');
    });
    after(() => h.close());

    test('deletes the entity’s tasks, their uploads and folders, and the generations with its LoRAs; cancels what runs; a repeat finishes', async () => {
      const photo = await sharp({ create: { width: 300, height: 300, channels: 3, background: '#c33' } })
        .png()
        .toBuffer();
      const boundary = 'kiln-erase';
      const uploaded = await h.app.inject({
        method: 'POST',
        url: '/api/v1/uploads/',
        headers: { ...acme, 'content-type': `multipart/form-data; boundary=${boundary}` },
        payload: Buffer.concat([
          Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="files"; filename="face.png"\r\ncontent-type: image/png\r\n\r\n`),
          photo,
          Buffer.from(`\r\n--${boundary}--\r\n`),
        ]),
      });
      assert.equal(uploaded.statusCode, 201, uploaded.body);
      const upload = uploaded.json<{ uploads: { id: string; reference: string }[] }>().uploads[0];

      const done = await task(PERSON, { status: 'COMPLETED', source_images: JSON.stringify([upload.reference]) });
      const waiting = await task(PERSON, { status: 'PENDING' });
      const training = await task(PERSON, { status: 'TRAINING', lease_owner: 'w1', lease_expires_at: new Date(Date.now() + 60_000).toISOString() });
      const made = await insertGeneration(h.runtime.generationStore, { status: 'COMPLETED', ...withLoras(done.id) });
      const queued = await insertGeneration(h.runtime.generationStore, { ...withLoras(SOMEONE_ELSE, done.id) });
      const unrelated = await insertGeneration(h.runtime.generationStore, { status: 'COMPLETED' });
      const otherEntity = await task(SOMEONE_ELSE, { status: 'COMPLETED' });
      const otherTenant = await task(PERSON, { status: 'COMPLETED' }, 'globex');

      const first = await erase();
      assert.deepEqual(first, {
        entity_id: PERSON,
        complete: false,
        deleted_tasks: [done.id, waiting.id],
        deleted_generations: [made.id, queued.id],
        deleted_uploads: 1,
        stopping: [training.id],
        blocked: [],
      });
      assert.equal((await h.runtime.taskStore.get(training.id))?.status, 'CANCELLED', 'the running task was cancelled');
      for (const id of [done.id, waiting.id]) {
        assert.equal(await exists('training', id), false);
        assert.equal(fs.existsSync(taskFolder(h.config.dataDir, id)), false, `${id}'s folder`);
      }
      for (const id of [made.id, queued.id]) assert.equal(await exists('generations', id), false);
      const gone = await h.app.inject({ method: 'DELETE', url: `/api/v1/uploads/${upload.id}`, headers: acme });
      assert.equal(gone.statusCode, 404, 'the upload went with its task');

      // The worker lets the cancelled task go, as it does once its trainer has exited.
      await h.runtime.store.db.updateTable('training_tasks').set({ lease_owner: null, lease_expires_at: null }).where('id', '=', training.id).execute();
      const second = await erase();
      assert.deepEqual(second, { entity_id: PERSON, complete: true, deleted_tasks: [training.id], deleted_generations: [], deleted_uploads: 0, stopping: [], blocked: [] });
      assert.deepEqual(await erase(), { entity_id: PERSON, complete: true, deleted_tasks: [], deleted_generations: [], deleted_uploads: 0, stopping: [], blocked: [] });

      assert.ok(await exists('training', otherEntity.id), 'another entity’s task stays');
      assert.ok(await exists('generations', unrelated.id), 'a generation without the entity’s LoRAs stays');
      assert.ok(await exists('training', otherTenant.id, await h.auth('globex')), 'the same entity id in another tenant is that tenant’s');
    });

    test('a task another entity’s unfinished task continues from is blocked, with the reason; an admin erases in every tenant', async () => {
      const source = await task(PERSON, { status: 'COMPLETED' });
      const continuing = await task(SOMEONE_ELSE, { status: 'QUEUED', init_lora_task_id: source.id });
      const theirs = await saveUpload(h.config, 'initech', 'face.jpg', Readable.from([Buffer.from('a face')]));
      const elsewhere = await task(PERSON, { status: 'FAILED', source_images: JSON.stringify([theirs.reference]) }, 'initech');
      const blocked = await erase();
      assert.equal(blocked.complete, false);
      assert.deepEqual(blocked.stopping, []);
      assert.deepEqual(
        blocked.blocked.map((b) => b.id),
        [source.id],
      );
      assert.match(blocked.blocked[0].reason, new RegExp(`^Task ${continuing.id} is QUEUED and continues from this task's LoRA`));

      const cancelled = await h.app.inject({ method: 'POST', url: `/api/v1/training/${continuing.id}/cancel`, headers: acme });
      assert.equal(cancelled.statusCode, 200, cancelled.body);
      const byAdmin = await erase(PERSON, await h.auth('ops', { admin: true }));
      assert.equal(byAdmin.complete, true);
      for (const id of [source.id, elsewhere.id]) assert.ok(byAdmin.deleted_tasks.includes(id), id);
      assert.equal(byAdmin.deleted_uploads, 1);
      assert.equal(fs.existsSync(path.join(h.config.dataDir, 'uploads', 'initech', theirs.id)), false, 'the upload of the other tenant’s task, from its own folder');
      const left = await h.runtime.store.db.selectFrom('training_tasks').select('id').where('entity_id', '=', PERSON).execute();
      assert.deepEqual(left, [], 'no tenant holds a task of the entity any more');
    });

    test('a malformed entity id is a 422, and the token is required', async () => {
      assert.equal((await h.app.inject({ method: 'DELETE', url: '/api/v1/entities/not-a-uuid', headers: acme })).statusCode, 422);
      assert.equal((await h.app.inject({ method: 'DELETE', url: `/api/v1/entities/${PERSON}` })).statusCode, 401);
    });
  });
}
