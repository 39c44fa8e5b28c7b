import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { saveUpload } from '../../src/preprocess/index.js';
import { startHousekeeping } from '../../src/retention/housekeeping.js';
import { discardFolder, emptyTrash } from '../../src/retention/trash.js';
import { DIALECTS, openHarness, tmpDir, type Harness } from '../helpers/harness.js';
import { until } from '../helpers/processes.js';
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

      const housekeeping = startHousekeeping(config, h.runtime.taskStore, pino({ level: 'silent' }));
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
  });
}

test('a process stopped as it starts closes its database only after the sweep, never under it', async () => {
  const h = await openHarness('sqlite');
  const errors: string[] = [];
  const log = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
  const housekeeping = startHousekeeping(h.config, h.runtime.taskStore, log);
  await housekeeping.stop();
  await h.close();
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(errors, []);
});
