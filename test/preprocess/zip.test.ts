import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PreprocessError } from '../../src/preprocess/index.js';
import type { Manifest } from '../../src/preprocess/manifest.js';
import { jpeg, makeZip, runJob, startServer, tempDir } from './helpers.js';

async function zipSource(zip: Buffer): Promise<{ file: string; root: string }> {
  const root = await tempDir();
  const file = path.join(root, 'photos.zip');
  await writeFile(file, zip);
  return { file, root };
}

describe('zip sources', () => {
  it('takes images and same-name .txt captions (provided strategy)', async () => {
    const zip = makeZip([
      { name: 'set/a.jpg', data: await jpeg(320, 240, 11) },
      { name: 'set/a.txt', data: Buffer.from('ohwx bottle on a beach') },
      { name: 'set/b.jpg', data: await jpeg(320, 240, 12) },
      { name: 'set/b.txt', data: Buffer.from('a bottle in the snow') },
      { name: 'set/c.jpg', data: await jpeg(320, 240, 13) },
      { name: '__MACOSX/set/._a.jpg', data: Buffer.from('junk') },
    ]);
    // The zip comes over HTTP here; paths and uploads go through the same unpacking.
    const server = await startServer((_req, res) => res.writeHead(200).end(zip));
    const out = await runJob([`${server.url}/set.zip`], { job: { captioning: { strategy: 'provided', prompt: null } } });
    assert.ifError(out.error);
    assert.equal(out.result!.accepted, 3);
    const dir = out.result!.datasetDir;
    assert.equal(await readFile(path.join(dir, '0001.txt'), 'utf8'), 'ohwx bottle on a beach\n');
    assert.equal(await readFile(path.join(dir, '0002.txt'), 'utf8'), 'ohwx, a bottle in the snow\n');
    assert.equal(await readFile(path.join(dir, '0003.txt'), 'utf8'), 'ohwx\n', 'no caption entry: the trigger word alone');
    const manifest = JSON.parse(await readFile(out.result!.manifestPath, 'utf8')) as Manifest;
    assert.deepEqual(
      manifest.entries.map((e) => [e.zip_entry, e.outputs[0]?.file]),
      [
        ['set/a.jpg', '0001.jpg'],
        ['set/b.jpg', '0002.jpg'],
        ['set/c.jpg', '0003.jpg'],
      ],
    );
  });

  it('refuses a zip with ../ entries', async () => {
    const { file, root } = await zipSource(makeZip([{ name: '../../evil.jpg', data: await jpeg(320, 240, 1) }]));
    const out = await runJob([file], { config: { sourceRoots: [root] } });
    assert.ok(out.error instanceof PreprocessError);
    assert.match(out.error.message, /photos\.zip: zip has an unsafe entry path \(invalid relative path: \.\.\/\.\.\/evil\.jpg\)/);
    const dirs = await readdir(path.dirname(root));
    assert.ok(!dirs.includes('evil.jpg'));
  });

  it('refuses a zip bomb by counting inflated bytes, even when the header lies', async () => {
    const zeros = Buffer.alloc(200 * 1024 * 1024);
    const honest = await zipSource(makeZip([{ name: 'zeros.jpg', data: zeros }]));
    const liar = await zipSource(makeZip([{ name: 'zeros.jpg', data: zeros, claimSize: 1000 }]));
    assert.ok((await readFile(honest.file)).length < 1_000_000, 'small on disk');

    const a = await runJob([honest.file], { config: { sourceRoots: [honest.root] } });
    assert.ok(a.error instanceof PreprocessError);
    assert.match(a.error.message, /zip entry zeros\.jpg inflates to 209715200 bytes, over the 52428800-byte limit/);

    // The header claims 1000 bytes; only the count of real inflated bytes catches it.
    const b = await runJob([liar.file], { config: { sourceRoots: [liar.root] } });
    assert.ok(b.error instanceof PreprocessError);
    assert.match(b.error.message, /photos\.zip: zip entry zeros\.jpg inflates past the size its header declares \(a zip bomb\?\)/);
  });

  it('refuses a zip whose total inflated size passes the cap', async () => {
    const files = await Promise.all([1, 2, 3].map(async (i) => ({ name: `${i}.jpg`, data: await jpeg(640, 480, i) })));
    const { file, root } = await zipSource(makeZip(files));
    const out = await runJob([file], { config: { sourceRoots: [root] }, options: { zipLimits: { maxTotalBytes: files[0].data.length + 10 } } });
    assert.ok(out.error instanceof PreprocessError);
    assert.match(out.error.message, /zip inflates past the \d+-byte limit \(a zip bomb\?\)/);
  });
});
