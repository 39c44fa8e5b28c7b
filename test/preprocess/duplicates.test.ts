import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { Manifest } from '../../src/preprocess/manifest.js';
import { blockImage, jpeg, runJob, tempDir } from './helpers.js';

describe('duplicates', () => {
  it('rejects exact and near duplicates, keeping the first and distinct images', async () => {
    const root = await tempDir();
    const files = {
      'original.jpg': await jpeg(640, 480, 21, 92),
      'copy.jpg': await jpeg(640, 480, 21, 92), // same bytes
      'requality.jpg': await jpeg(640, 480, 21, 60), // re-encoded at another quality
      'smaller.png': await blockImage(600, 450, 21).png().toBuffer(), // slightly resized, other format
      'different.jpg': await jpeg(640, 480, 22, 92),
    };
    for (const [name, data] of Object.entries(files)) await writeFile(path.join(root, name), data);
    const sources = Object.keys(files).map((name) => path.join(root, name));

    const out = await runJob(sources, { config: { sourceRoots: [root] } });
    assert.ifError(out.error);
    assert.equal(out.result!.accepted, 2);
    const manifest = JSON.parse(await readFile(out.result!.manifestPath, 'utf8')) as Manifest;
    const byName = new Map(manifest.entries.map((e) => [path.basename(e.source), e]));
    assert.equal(byName.get('original.jpg')!.status, 'accepted');
    assert.equal(byName.get('different.jpg')!.status, 'accepted');
    assert.equal(byName.get('copy.jpg')!.reason, `exact duplicate of ${sources[0]}`);
    assert.match(byName.get('requality.jpg')!.reason!, new RegExp(`^near-duplicate of ${sources[0]} \\(perceptual hash distance [0-4]\\)$`));
    assert.match(byName.get('smaller.png')!.reason!, /^near-duplicate of .*original\.jpg/);
    assert.deepEqual(
      out.result!.rejected.map((r) => path.basename(r.source)),
      ['copy.jpg', 'requality.jpg', 'smaller.png'],
    );
  });
});
