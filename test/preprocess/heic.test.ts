import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { HEIC_DECODING, HeicDecodeError, hevcHeifToPng, withIccProfile } from '../../src/preprocess/heic.js';
import type { Manifest } from '../../src/preprocess/manifest.js';
import { runJob, tempDir } from './helpers.js';

// An iPhone-like photo: HEVC-coded HEIF in Display P3, stored sideways (fixtures/make-heic.ts).
const IPHONE_PHOTO = path.join(import.meta.dirname, 'fixtures', 'iphone-p3-rot6.heic');

async function pixelAt(file: string, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  const at = (y * info.width + x) * info.channels;
  return [...data.subarray(at, at + 3)];
}

function assertNear(actual: number[], expected: number[], what: string): void {
  const off = Math.max(...actual.map((v, i) => Math.abs(v - expected[i])));
  assert.ok(off <= 8, `${what}: ${actual.join(',')} is not within 8 of ${expected.join(',')}`);
}

describe('iPhone photos (HEIC)', () => {
  it('become upright sRGB dataset images, named by the file they came from', async () => {
    const root = await tempDir();
    const file = path.join(root, 'IMG_0042.HEIC');
    await writeFile(file, await readFile(IPHONE_PHOTO));
    const out = await runJob([file], { config: { sourceRoots: [root], minImages: 1 } });
    assert.ifError(out.error);
    assert.equal(out.result!.accepted, 1);

    const manifest = JSON.parse(await readFile(out.result!.manifestPath, 'utf8')) as Manifest;
    const [entry] = manifest.entries;
    assert.deepEqual([entry.status, entry.format, entry.width, entry.height], ['accepted', 'heif', 288, 384]);
    assert.deepEqual(entry.outputs, [{ file: '0001.jpg', width: 288, height: 384 }]);

    // Held upright the stored left half (green) is on top, and the stored top-left square at
    // the top right. The colours are the sRGB ones the photo was made from, not its P3 numbers.
    const image = path.join(out.result!.datasetDir, '0001.jpg');
    assert.equal((await sharp(image).metadata()).format, 'jpeg');
    assertNear(await pixelAt(image, 40, 100), [20, 200, 40], 'green half');
    assertNear(await pixelAt(image, 144, 300), [220, 30, 30], 'red half');
    assertNear(await pixelAt(image, 280, 8), [0, 0, 0], 'the square');
    assert.ok(!(await readdir(path.join(out.taskDir, 'sources'))).includes('decoded'), 'the decoded PNG is gone once the dataset is written');
  });

  it('a cut-off HEIC photo, or a Live Photo video, is rejected with what is wrong and which file', async () => {
    const root = await tempDir();
    const whole = await readFile(IPHONE_PHOTO);
    const headerAt = whole.indexOf('mdat') - 4; // the pictures' bytes follow the header
    const files = {
      'IMG_0043.HEIC': whole.subarray(0, headerAt + 20), // the header whole, the picture cut
      'IMG_0044.HEIC': whole.subarray(0, headerAt >> 1), // the header cut
      'IMG_0045.MOV': Buffer.concat([Buffer.from('\0\0\0\x14ftypqt  \0\0\0\0qt  ', 'latin1'), Buffer.alloc(64)]),
    };
    for (const [name, bytes] of Object.entries(files)) await writeFile(path.join(root, name), bytes);
    const out = await runJob(
      Object.keys(files).map((name) => path.join(root, name)),
      { config: { sourceRoots: [root], minImages: 1 } },
    );
    assert.ok(out.error, 'the task fails');
    const lines = out.error.message.split('\n').slice(1);
    assert.match(lines[0], /IMG_0043\.HEIC: corrupt or truncated HEIC photo \(.*end of file/i);
    assert.match(lines[1], /IMG_0044\.HEIC: corrupt or truncated HEIC photo \(No 'meta' box/);
    assert.match(lines[2], /IMG_0045\.MOV: not an image \(a video or other ISO media file, brand "qt"/);
  });

  it('the decoder thread says what libheif found wrong, and stops when the task is cancelled', async () => {
    await assert.rejects(hevcHeifToPng(Buffer.from('not a HEIF file at all. '.repeat(8)), {}, 1e8), (err: Error) => err instanceof HeicDecodeError && /ftyp/.test(err.message));
    const photo = await readFile(IPHONE_PHOTO);
    await assert.rejects(hevcHeifToPng(photo, {}, 288 * 384 - 1), /too many pixels: 288x384/, 'the thread checks the limit before decoding');
    const cancel = new AbortController();
    const decoding = hevcHeifToPng(photo, {}, 1e8, cancel.signal);
    setTimeout(() => cancel.abort(new Error('cancelled by the user')), 5);
    await assert.rejects(decoding, /cancelled by the user/);
    assert.ok((await hevcHeifToPng(photo, {}, 1e8)).length > 0, 'a later decode still works');
    assert.equal(HEIC_DECODING.used, 0, 'failed and cancelled decodes gave their pixels back');
  });

  it('decodes hold their pixels in the process-wide budget while they run', async () => {
    const photo = await readFile(IPHONE_PHOTO);
    const meta = await sharp(photo).metadata();
    const decoding = hevcHeifToPng(photo, meta, 1e8);
    assert.equal(HEIC_DECODING.used, 288 * 384);
    await decoding;
    assert.equal(HEIC_DECODING.used, 0);
  });

  it('a PNG given an ICC profile carries it, and sharp converts through it', async () => {
    const icc = (
      await sharp(
        await sharp({ create: { width: 4, height: 4, channels: 3, background: '#888' } })
          .withIccProfile('p3')
          .png()
          .toBuffer(),
      ).metadata()
    ).icc!;
    // sRGB red written in Display P3 numbers (as libheif hands back an iPhone's pixels).
    const p3Red = await sharp(Buffer.from(Array.from({ length: 16 }, () => [202, 54, 43]).flat()), { raw: { width: 4, height: 4, channels: 3 } })
      .png()
      .toBuffer();
    const tagged = withIccProfile(p3Red, icc);
    assert.deepEqual((await sharp(tagged).metadata()).icc, icc);
    const { data } = await sharp(tagged).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    assertNear([...data.subarray(0, 3)], [220, 30, 30], 'converted to sRGB');
  });
});
