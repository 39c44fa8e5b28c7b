import assert from 'node:assert/strict';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { PreprocessError } from '../../src/preprocess/index.js';
import type { Manifest } from '../../src/preprocess/manifest.js';
import { jpeg, runJob, tempDir } from './helpers.js';

describe('local sources stay inside KILN_SOURCE_ROOTS', () => {
  it('refuses ../ traversal out of the root', async () => {
    const base = await tempDir();
    const root = path.join(base, 'root');
    await mkdir(root);
    await writeFile(path.join(base, 'outside.jpg'), await jpeg(320, 240, 1));
    const sneaky = `${root}/../outside.jpg`;
    const out = await runJob([sneaky], { config: { sourceRoots: [root] } });
    assert.ok(out.error instanceof PreprocessError);
    assert.match(out.error.message, /outside\.jpg: resolves outside KILN_SOURCE_ROOTS/);
    const manifest = JSON.parse(await readFile(path.join(out.taskDir, 'dataset', 'manifest.json'), 'utf8')) as Manifest;
    assert.equal(manifest.entries[0].reason, 'resolves outside KILN_SOURCE_ROOTS');
  });

  it('refuses a symlink inside the root that points out of it', async () => {
    const base = await tempDir();
    const root = path.join(base, 'root');
    await mkdir(root);
    await writeFile(path.join(base, 'secret.jpg'), await jpeg(320, 240, 2));
    await symlink(path.join(base, 'secret.jpg'), path.join(root, 'link.jpg'));
    const out = await runJob([pathToFileURL(path.join(root, 'link.jpg')).href], { config: { sourceRoots: [root] } });
    assert.ok(out.error instanceof PreprocessError);
    assert.match(out.error.message, /link\.jpg: resolves outside KILN_SOURCE_ROOTS/);
  });

  it('refuses local paths when no root is configured', async () => {
    const out = await runJob(['/etc/hostname']);
    assert.ok(out.error instanceof PreprocessError);
    assert.match(out.error.message, /\/etc\/hostname: local paths are not allowed \(KILN_SOURCE_ROOTS is empty\)/);
  });

  it('takes a file under the root, with the .txt beside it as its provided caption', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'mug.jpg'), await jpeg(320, 240, 3));
    await writeFile(path.join(root, 'mug.txt'), 'a red mug on a desk\n');
    const out = await runJob([path.join(root, 'mug.jpg')], {
      config: { sourceRoots: [root] },
      job: { captioning: { strategy: 'provided', prompt: null } },
    });
    assert.ifError(out.error);
    assert.equal(await readFile(path.join(out.result!.datasetDir, '0001.txt'), 'utf8'), 'ohwx, a red mug on a desk\n');
  });
});
