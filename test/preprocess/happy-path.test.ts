import assert from 'node:assert/strict';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { testConfig } from '../../src/config.js';
import { deleteUpload, saveUpload } from '../../src/preprocess/index.js';
import type { Manifest } from '../../src/preprocess/manifest.js';
import { jpeg, runJob, startServer, tempDir } from './helpers.js';

describe('a task with several kinds of source', () => {
  it('produces dataset images, captions and a manifest covering every source', async () => {
    const dataDir = await tempDir();
    const root = await tempDir();
    const fromUrl = await jpeg(640, 480, 51);
    const server = await startServer((req, res) => (req.url === '/photo.jpg' ? res.writeHead(200, { 'content-type': 'image/jpeg' }).end(fromUrl) : res.writeHead(404).end()));
    await writeFile(path.join(root, 'local.jpg'), await jpeg(2000, 1000, 52));
    const dataUri = `data:image/png;base64,${(
      await sharp(await jpeg(300, 300, 53))
        .png()
        .toBuffer()
    ).toString('base64')}`;
    const upload = await saveUpload(testConfig(dataDir), 'acme', 'mine.jpg', Readable.from([await jpeg(500, 400, 54)]));

    const sources = [`${server.url}/photo.jpg`, path.join(root, 'local.jpg'), dataUri, upload.reference, `${server.url}/gone.jpg`];
    const out = await runJob(sources, {
      dataDir,
      config: { sourceRoots: [root], datasetMaxSide: 1024 },
      job: { tenantId: 'acme', entityType: 'SUBJECT', captioning: { strategy: 'template', prompt: null } },
    });
    assert.ifError(out.error);
    const { result } = out;
    assert.equal(result!.accepted, 4);
    assert.equal(result!.datasetDir, path.join(out.taskDir, 'dataset'));
    assert.match(result!.rejected[0].reason, /HTTP 404/);

    const files = (await readdir(result!.datasetDir)).sort();
    assert.deepEqual(files, ['0001.jpg', '0001.txt', '0002.jpg', '0002.txt', '0003.png', '0003.txt', '0004.jpg', '0004.txt', 'manifest.json']);
    assert.equal(await readFile(path.join(result!.datasetDir, '0002.txt'), 'utf8'), 'a photo of ohwx person\n');
    assert.deepEqual((await sharp(path.join(result!.datasetDir, '0002.jpg')).metadata()).width, 1024, 'capped at the dataset max side');

    const manifest = JSON.parse(await readFile(result!.manifestPath, 'utf8')) as Manifest;
    assert.equal(manifest.entries.length, 5);
    assert.equal(manifest.accepted, 4);
    const [url, local, data, up, gone] = manifest.entries;
    assert.equal(url.source, sources[0]);
    assert.equal(url.sha256, (await import('node:crypto')).createHash('sha256').update(fromUrl).digest('hex'));
    assert.equal(url.bytes, fromUrl.length);
    assert.deepEqual([local.width, local.height, local.outputs[0].width, local.outputs[0].height], [2000, 1000, 1024, 512]);
    assert.match(data.source, /^data:image\/png;base64,.{0,20}…$/);
    assert.equal(data.format, 'png');
    assert.equal(up.source, upload.reference);
    assert.deepEqual(
      manifest.entries.map((e) => e.filename),
      [null, null, null, 'mine.jpg', null],
      'an upload keeps the name it was sent under',
    );
    assert.equal(up.caption, 'a photo of ohwx person');
    assert.equal(gone.status, 'rejected');
    assert.deepEqual(gone.outputs, []);

    const stages = [...new Set(out.events.map((e) => e.stage))];
    assert.deepEqual(stages, ['downloading', 'validating', 'transforming', 'captioning', 'finalizing']);
    assert.deepEqual(out.events.filter((e) => e.stage === 'downloading').at(-1), { stage: 'downloading', processed: 5, total: 5 });
    assert.deepEqual(out.events.filter((e) => e.stage === 'transforming').at(-1), { stage: 'transforming', processed: 4, total: 4 });
    // Downloads land in sources/.
    assert.ok((await readdir(path.join(out.taskDir, 'sources'))).some((f) => f.startsWith('url-')));
  });

  it('a rejected upload is named by the name it was sent under', async () => {
    const dataDir = await tempDir();
    const config = testConfig(dataDir);
    const good = await saveUpload(config, 'acme', 'mug.jpg', Readable.from([await jpeg(500, 400, 56)]));
    const bad = await saveUpload(config, 'acme', 'IMG_0042.png', Readable.from([Buffer.from('not a picture')]));
    const again = await saveUpload(config, 'acme', 'mug copy.jpg', Readable.from([await jpeg(500, 400, 56)]));
    const out = await runJob([good.reference, bad.reference, again.reference], { dataDir, config: { minImages: 2 }, job: { tenantId: 'acme' } });
    const lines = out.error!.message.split('\n');
    assert.match(lines[0], /^not enough usable images: 1 of 3 usable, at least 2 needed/);
    assert.deepEqual(lines.slice(1), [
      `- IMG_0042.png (${bad.reference}): not an image (unrecognised format)`,
      `- mug copy.jpg (${again.reference}): exact duplicate of mug.jpg (${good.reference})`,
    ]);
  });

  it('a task keeps its own copy of each upload: a rerun after the upload was deleted still has it, under the name it was sent under', async () => {
    const dataDir = await tempDir();
    const config = testConfig(dataDir);
    const upload = await saveUpload(config, 'acme', 'IMG_0007.jpg', Readable.from([await jpeg(500, 400, 57)]));
    const first = await runJob([upload.reference], { dataDir, job: { tenantId: 'acme' } });
    assert.equal(first.error, undefined);
    const copy = (await readdir(path.join(first.taskDir, 'sources'))).find((f) => f.startsWith('upload-'));
    assert.ok(copy, 'the upload is in the task’s sources/');
    assert.equal((await stat(path.join(first.taskDir, 'sources', copy))).size, upload.size);

    await deleteUpload(config, 'acme', upload.reference);
    const rerun = await runJob([upload.reference], { dataDir, job: { tenantId: 'acme' } });
    assert.equal(rerun.error, undefined);
    const manifest = JSON.parse(await readFile(path.join(rerun.taskDir, 'dataset', 'manifest.json'), 'utf8')) as Manifest;
    assert.deepEqual(
      manifest.entries.map((e) => [e.filename, e.status]),
      [['IMG_0007.jpg', 'accepted']],
    );
  });

  it("another tenant's upload is not found", async () => {
    const dataDir = await tempDir();
    const upload = await saveUpload(testConfig(dataDir), 'acme', 'mine.jpg', Readable.from([await jpeg(500, 400, 55)]));
    const out = await runJob([upload.reference], { dataDir, job: { tenantId: 'globex' } });
    assert.match(out.error!.message, new RegExp(`${upload.reference}: upload ${upload.reference} not found`));
  });

  it('stops between files when cancelled', async () => {
    const root = await tempDir();
    const sources: string[] = [];
    for (let i = 0; i < 6; i++) {
      const file = path.join(root, `${i}.jpg`);
      await writeFile(file, await jpeg(320, 240, 60 + i));
      sources.push(file);
    }
    const controller = new AbortController();
    const out = await runJob(sources, {
      config: { sourceRoots: [root] },
      signal: controller.signal,
      options: { imageConcurrency: 1 },
      onProgress: (p) => {
        if (p.stage === 'validating' && p.processed === 2) controller.abort();
      },
    });
    assert.equal(out.error?.name, 'AbortError');
    const validated = out.events.filter((e) => e.stage === 'validating').map((e) => e.processed);
    assert.deepEqual(validated, [0, 1, 2], 'no file was validated after the abort');
    await assert.rejects(readdir(path.join(out.taskDir, 'dataset')), { code: 'ENOENT' });
  });
});
