import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { PreprocessError } from '../../src/preprocess/index.js';
import type { Manifest } from '../../src/preprocess/manifest.js';
import { jpeg, runJob, tempDir } from './helpers.js';

/** Runs a one-file job from a source root; the task must fail and name the reason twice. */
async function expectRejected(name: string, bytes: Buffer, reason: RegExp): Promise<void> {
  const root = await tempDir();
  const file = path.join(root, name);
  await writeFile(file, bytes);
  const out = await runJob([file], { config: { sourceRoots: [root] } });
  assert.ok(out.error instanceof PreprocessError, `expected PreprocessError, got ${out.error}`);
  assert.match(out.error.message, /not enough usable images: 0 of 1/);
  assert.ok(out.error.message.includes(file), 'error names the source');
  assert.match(out.error.message, reason);
  const manifest = JSON.parse(await readFile(path.join(out.taskDir, 'dataset', 'manifest.json'), 'utf8')) as Manifest;
  assert.equal(manifest.entries.length, 1);
  assert.equal(manifest.entries[0].status, 'rejected');
  assert.equal(manifest.entries[0].source, file);
  assert.match(manifest.entries[0].reason!, reason);
}

describe('validation rejects unusable files', () => {
  it('zero-byte file', async () => {
    await expectRejected('empty.jpg', Buffer.alloc(0), /empty file \(0 bytes\)/);
  });

  it('truncated JPEG', async () => {
    const full = await jpeg(400, 300, 1);
    await expectRejected('cut.jpg', full.subarray(0, Math.floor(full.length / 2)), /corrupt or truncated image/);
  });

  it('text file named .jpg', async () => {
    await expectRejected('notes.jpg', Buffer.from('just some notes, not a picture\n'), /not an image \(unrecognised format\)/);
  });

  it('HTML page', async () => {
    await expectRejected('page.jpg', Buffer.from('<!DOCTYPE html><html><body>Not found</body></html>'), /not an image \(an HTML page\)/);
  });

  it('SVG', async () => {
    const svg = '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="500" height="500"><rect width="500" height="500"/></svg>';
    await expectRejected('logo.svg', Buffer.from(svg), /not a raster image \(SVG\)/);
  });

  it('20000x20000 PNG is refused by pixel count without decoding', async () => {
    const bomb = await sharp({ create: { width: 20000, height: 20000, channels: 3, background: '#808080' }, limitInputPixels: false })
      .png({ compressionLevel: 9 })
      .toBuffer();
    assert.ok(bomb.length < 5_000_000, 'small on disk');
    const started = Date.now();
    await expectRejected('bomb.png', bomb, /too many pixels: 20000x20000 is 400\.0 MP, over the 100\.0 MP limit/);
    assert.ok(Date.now() - started < 5000, 'not decoded');
  });

  it('1x1 image', async () => {
    const dot = await sharp({ create: { width: 1, height: 1, channels: 3, background: '#ff0000' } })
      .png()
      .toBuffer();
    await expectRejected('dot.png', dot, /too small: 1x1, the shorter side must be at least 64 px/);
  });

  it('animated GIF', async () => {
    const frames = await Promise.all(
      ['#ff0000', '#00ff00', '#0000ff'].map((c) =>
        sharp({ create: { width: 300, height: 300, channels: 3, background: c } })
          .png()
          .toBuffer(),
      ),
    );
    const gif = await sharp(frames, { join: { animated: true } })
      .gif()
      .toBuffer();
    await expectRejected('anim.gif', gif, /animated or multi-page image \(3 frames\)/);
  });
});
