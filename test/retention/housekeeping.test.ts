import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { saveUpload } from '../../src/preprocess/index.js';
import { taskFolder } from '../../src/domain/task-folder.js';
import { startHousekeeping } from '../../src/retention/housekeeping.js';
import { discardFolder, emptyTrash } from '../../src/retention/trash.js';
import { DIALECTS, openHarness, tmpDir, type Harness } from '../helpers/harness.js';
import { until } from '../helpers/processes.js';
import { insertGeneration } from '../helpers/generations.js';
import { insertTask } from '../helpers/tasks.js';

describe('the trash', () => {
  test('a folder is discarded whole; a missing one is no error; nothing outside the data dir is touched', async () => {
    const dataDir = tmpDir();
    const folder = path.join(dataDir, 'tasks', 'abc');
    fs.mkdirSync(path.join(folder, 'output'), { recursive: true });
    fs.writeFileSync(path.join(folder, 'output', 'lora.safetensors'), 'weights');
    await discardFolder(dataDir, folder);
    assert.equal(fs.existsSync(folder), false);
    assert.deepEqual(fs.readdirSync(path.join(dataDir, '.trash')), []);
    await discardFolder(dataDir, folder);

    const outside = tmpDir();
    for (const target of [outside, dataDir, path.join(dataDir, '..', path.basename(outside))]) {
      await assert.rejects(discardFolder(dataDir, target), /not inside the data dir/);
    }
    assert.ok(fs.existsSync(outside));
  });

  test('emptyTrash finishes removals a stopped process left behind', async () => {
    const dataDir = tmpDir();
    assert.equal(await emptyTrash(dataDir), 0, 'no trash yet');
    fs.mkdirSync(path.join(dataDir, '.trash', 'abc-1234', 'checkpoints'), { recursive: true });
    fs.writeFileSync(path.join(dataDir, '.trash', 'abc-1234', 'checkpoints', 'state.pt'), 'x');
    assert.equal(await emptyTrash(dataDir), 1);
    assert.deepEqual(fs.readdirSync(path.join(dataDir, '.trash')), []);
  });
});

for (const dialect of DIALECTS) {
  describe(`housekeeping of an API process (${dialect})`, () => {
    let h: Harness;
    before(async () => {
      h = await openHarness(dialect, { uploadRetentionHours: 1 });
    });
    after(() => h.close());

    test('at start: the trash is emptied, and expired uploads go unless a task still waits to preprocess them', async () => {
      const config = h.config;
      const save = () => saveUpload(config, 'acme', 'IMG_0001.jpg', Readable.from([Buffer.from('x')]));
      const [expired, awaited, preprocessed, fresh] = [await save(), await save(), await save(), await save()];
      // Made two hours ago: past the one-hour retention.
      for (const upload of [expired, awaited, preprocessed]) {
        const meta = path.join(config.dataDir, 'uploads', 'acme', upload.id, 'meta.json');
        fs.writeFileSync(meta, JSON.stringify({ ...upload, created_at: new Date(Date.now() - 2 * 3_600_000).toISOString() }));
      }
      await insertTask(h.runtime.taskStore, { set: { source_images: JSON.stringify([awaited.reference]) } });
      await insertTask(h.runtime.taskStore, { set: { status: 'QUEUED', source_images: JSON.stringify([preprocessed.reference]) } });
      fs.mkdirSync(path.join(config.dataDir, '.trash', 'left-behind'), { recursive: true });

      const housekeeping = startHousekeeping(config, h.runtime.taskStore, h.runtime.generationStore, pino({ level: 'silent' }));
      try {
        const exists = (id: string) => fs.existsSync(path.join(config.dataDir, 'uploads', 'acme', id));
        await until(async () => !exists(expired.id), 'the expired upload is deleted', 10_000);
        assert.equal(exists(preprocessed.id), false, 'a QUEUED task has its own copy');
        assert.equal(exists(awaited.id), true, 'a PENDING task still needs this one');
        assert.equal(exists(fresh.id), true);
        assert.deepEqual(fs.readdirSync(path.join(config.dataDir, '.trash')), []);
      } finally {
        await housekeeping.stop();
      }
    });

    test('with KILN_PHOTO_RETENTION_HOURS, the photos of tasks finished longer ago go, and nothing else', async () => {
      const config = { ...h.config, photoRetentionHours: 1 };
      const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3_600_000).toISOString();
      const task = async (status: string, updatedAt: string) => {
        const row = await insertTask(h.runtime.taskStore, { set: { status, updated_at: updatedAt } });
        for (const file of ['dataset/0001.png', 'dataset/manifest.json', 'output/lora.safetensors']) {
          const at = path.join(taskFolder(config.dataDir, row.id), file);
          fs.mkdirSync(path.dirname(at), { recursive: true });
          fs.writeFileSync(at, file);
        }
        return row;
      };
      const [old, recent, running] = [await task('COMPLETED', hoursAgo(2)), await task('FAILED', hoursAgo(0.5)), await task('QUEUED', hoursAgo(5))];
      const photo = (id: string) => fs.existsSync(path.join(taskFolder(config.dataDir, id), 'dataset', '0001.png'));
      const housekeeping = startHousekeeping(config, h.runtime.taskStore, h.runtime.generationStore, pino({ level: 'silent' }));
      try {
        await until(async () => (await h.runtime.taskStore.get(old.id))?.photos_deleted_at, 'the old task’s photos to be deleted', 10_000);
      } finally {
        await housekeeping.stop();
      }
      assert.equal(photo(old.id), false);
      assert.ok(fs.existsSync(path.join(taskFolder(config.dataDir, old.id), 'output', 'lora.safetensors')), 'its weights stay');
      for (const kept of [recent, running]) {
        assert.equal(photo(kept.id), true, kept.status);
        assert.equal((await h.runtime.taskStore.get(kept.id))?.photos_deleted_at, null);
      }
    });
  });
}

for (const dialect of DIALECTS) {
  test(`with KILN_GENERATION_RETENTION_HOURS, generations finished longer ago go with their images (${dialect})`, async () => {
    const h = await openHarness(dialect, { generationRetentionHours: 1 });
    try {
      const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3_600_000).toISOString();
      const made = async (status: string, updatedAt: string) => {
        const row = await insertGeneration(h.runtime.generationStore, { status, updated_at: updatedAt });
        fs.mkdirSync(path.join(h.config.dataDir, 'generations', row.id, 'images'), { recursive: true });
        fs.writeFileSync(path.join(h.config.dataDir, 'generations', row.id, 'images', '0.png'), 'png');
        return row;
      };
      const [old, recent, waiting] = [await made('COMPLETED', hoursAgo(2)), await made('FAILED', hoursAgo(0.5)), await made('PENDING', hoursAgo(3))];
      const housekeeping = startHousekeeping(h.config, h.runtime.taskStore, h.runtime.generationStore, pino({ level: 'silent' }));
      try {
        await until(async () => (await h.runtime.generationStore.get(old.id)) === undefined, 'the old generation to be deleted', 10_000);
      } finally {
        await housekeeping.stop();
      }
      assert.equal(fs.existsSync(path.join(h.config.dataDir, 'generations', old.id)), false, 'its images too');
      for (const kept of [recent, waiting]) assert.ok(await h.runtime.generationStore.get(kept.id), kept.status);
    } finally {
      await h.close();
    }
  });
}

test('a process stopped as it starts closes its database only after the sweep, never under it', async () => {
  const h = await openHarness('sqlite');
  const errors: string[] = [];
  const log = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
  const housekeeping = startHousekeeping(h.config, h.runtime.taskStore, h.runtime.generationStore, log);
  await housekeeping.stop();
  await h.close();
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(errors, []);
});
