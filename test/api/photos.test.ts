import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { taskFolder } from '../../src/domain/task-folder.js';
import { saveUpload } from '../../src/preprocess/index.js';
import type { TrainingTaskRow } from '../../src/store/db.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';

/** What a task that ran leaves in its folder, the photos and what was made from them first. */
const PHOTOS = ['sources/upload-1a2b', 'sources/index.json', 'dataset/0001.png', 'dataset/0001.txt', 'cache/latents-abc.pt', 'cache/text-def.pt'];
const KEPT = [
  'sources/init_lora.safetensors',
  'dataset/manifest.json',
  'output/lora.safetensors',
  'samples/step_10_0.png',
  'checkpoints/step_000010/trainable.safetensors',
  'logs/trainer.log',
];

for (const dialect of DIALECTS) {
  describe(`DELETE /api/v1/training/{id}/photos (${dialect})`, () => {
    let h: Harness;
    let acme: Record<string, string>;
    const upload = (name: string) => saveUpload(h.config, 'acme', name, Readable.from([Buffer.from(`bytes of ${name}`)]));
    const ranTask = async (set: Partial<TrainingTaskRow>) => {
      const row = await insertTask(h.runtime.taskStore, { set: { status: 'COMPLETED', ...set } });
      for (const file of [...PHOTOS, ...KEPT]) {
        const at = path.join(taskFolder(h.config.dataDir, row.id), file);
        fs.mkdirSync(path.dirname(at), { recursive: true });
        fs.writeFileSync(at, file);
      }
      return row;
    };
    const present = (id: string, files: string[]) => files.filter((f) => fs.existsSync(path.join(taskFolder(h.config.dataDir, id), f)));
    const deletePhotos = (id: string, headers = acme) => h.app.inject({ method: 'DELETE', url: `/api/v1/training/${id}/photos`, headers });
    const uploadExists = (id: string) => fs.existsSync(path.join(h.config.dataDir, 'uploads', 'acme', id));

    before(async () => {
      h = await openHarness(dialect);
      acme = await h.auth('acme');
    });
    after(() => h.close());

    test('removes the photos, the dataset images and the caches, and the uploads; keeps the weights, samples and logs; then refuses a retry', async () => {
      const [own, awaited] = [await upload('face.jpg'), await upload('shared.jpg')];
      const task = await ranTask({ source_images: JSON.stringify([own.reference, awaited.reference]), webhook_url: 'https://hooks.example.com/kiln' });
      await insertTask(h.runtime.taskStore, { set: { source_images: JSON.stringify([awaited.reference]) } });

      const res = await deletePhotos(task.id);
      assert.equal(res.statusCode, 200, res.body);
      const shown = res.json<TrainingTask>();
      assert.ok(shown.photos_deleted_at && Date.parse(shown.photos_deleted_at) <= Date.now());
      assert.equal(shown.status, 'COMPLETED');
      assert.deepEqual(present(task.id, PHOTOS), []);
      assert.deepEqual(present(task.id, KEPT), KEPT);
      assert.equal(uploadExists(own.id), false, 'the upload it was made from');
      assert.equal(uploadExists(awaited.id), true, 'an upload a PENDING task still needs');

      const again = await deletePhotos(task.id);
      assert.equal(again.statusCode, 200);
      assert.equal(again.json<TrainingTask>().photos_deleted_at, shown.photos_deleted_at, 'a repeat changes nothing');
      const hooks = await h.runtime.store.db
        .selectFrom('webhook_deliveries')
        .select('payload')
        .where('task_id', '=', task.id)
        .where('event_type', '=', 'training.photos_deleted')
        .execute();
      assert.equal(hooks.length, 1, 'announced once, with the task as it stands');
      assert.equal((JSON.parse(hooks[0].payload) as { data: TrainingTask }).data.photos_deleted_at, shown.photos_deleted_at);
      const got = await h.app.inject({ method: 'GET', url: `/api/v1/training/${task.id}`, headers: acme });
      assert.equal(got.json<TrainingTask>().photos_deleted_at, shown.photos_deleted_at);

      await h.runtime.store.db.updateTable('training_tasks').set({ status: 'FAILED' }).where('id', '=', task.id).execute();
      const retried = await h.app.inject({ method: 'POST', url: `/api/v1/training/${task.id}/retry`, headers: acme });
      assert.equal(retried.statusCode, 409);
      assert.match(retried.json<{ detail: string }>().detail, /^The task's photos were deleted at .*, so it cannot train again; create a new task with new uploads$/);
      assert.equal((await h.runtime.taskStore.get(task.id))?.status, 'FAILED', 'the refused retry changed nothing');
    });

    test('an unfinished task is a 409, one still stopping says to try again, another tenant’s is a 404', async () => {
      const waiting = await ranTask({ status: 'QUEUED' });
      const pending = await deletePhotos(waiting.id);
      assert.equal(pending.statusCode, 409);
      assert.match(pending.json<{ detail: string }>().detail, /^Task is QUEUED; its photos can be deleted once it has finished/);
      const stopping = await ranTask({ status: 'CANCELLED', lease_owner: 'w1', lease_expires_at: new Date(Date.now() + 60_000).toISOString() });
      const res = await deletePhotos(stopping.id);
      assert.equal(res.statusCode, 409);
      assert.match(res.json<{ detail: string }>().detail, /still stopping on its worker/);
      for (const id of [waiting.id, stopping.id]) assert.deepEqual(present(id, PHOTOS), PHOTOS, 'nothing was deleted');
      assert.equal((await deletePhotos(waiting.id, await h.auth('globex'))).statusCode, 404);
    });
  });
}
