import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { validateTransforms } from '../../src/preprocess/index.js';
import type { Manifest } from '../../src/preprocess/manifest.js';
import { jpeg, runJob, tempDir } from './helpers.js';

async function pixel(file: string, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  const at = (y * info.width + x) * info.channels;
  return [...data.subarray(at, at + 3)];
}

const isRed = ([r, g, b]: number[]) => r > 200 && g < 60 && b < 60;

describe('transforms', () => {
  it('an EXIF-rotated photo comes out upright', async () => {
    const root = await tempDir();
    // Stored 400x300, white, with a red marker in the stored top-left corner. Orientation 6
    // means "rotate 90° clockwise to display", so upright it is 300x400 with the marker top-right.
    const marker = await sharp({ create: { width: 60, height: 60, channels: 3, background: '#ff0000' } })
      .png()
      .toBuffer();
    const stored = await sharp({ create: { width: 400, height: 300, channels: 3, background: '#ffffff' } })
      .composite([{ input: marker, left: 0, top: 0 }])
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    await writeFile(path.join(root, 'rotated.jpg'), stored);
    const out = await runJob([path.join(root, 'rotated.jpg')], { config: { sourceRoots: [root] } });
    assert.ifError(out.error);
    const file = path.join(out.result!.datasetDir, '0001.jpg');
    const meta = await sharp(file).metadata();
    assert.deepEqual([meta.width, meta.height], [300, 400]);
    assert.equal(meta.orientation ?? 1, 1, 'no orientation tag left to apply twice');
    assert.ok(isRed(await pixel(file, 270, 30)), 'marker top-right');
    assert.ok(!isRed(await pixel(file, 30, 30)), 'not top-left');
    const manifest = JSON.parse(await readFile(out.result!.manifestPath, 'utf8')) as Manifest;
    assert.deepEqual([manifest.entries[0].width, manifest.entries[0].height], [400, 300]);
    assert.deepEqual(manifest.entries[0].outputs, [{ file: '0001.jpg', width: 300, height: 400 }]);
  });

  it('applies transforms in order; flips add mirrored copies; output is RGB and capped', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'a.jpg'), await jpeg(800, 400, 31));
    await writeFile(
      path.join(root, 'b.png'),
      await sharp(await jpeg(300, 500, 32))
        .png()
        .toBuffer(),
    );
    const out = await runJob([path.join(root, 'a.jpg'), path.join(root, 'b.png')], {
      config: { sourceRoots: [root], datasetMaxSide: 256 },
      job: {
        transforms: [{ type: 'center_crop', aspect_ratio: '1:1' }, { type: 'grayscale' }, { type: 'flip_horizontal' }, { type: 'pad_to_square', color: '#000000' }],
      },
    });
    assert.ifError(out.error);
    const files = (await readdir(out.result!.datasetDir)).sort();
    assert.deepEqual(files, ['0001.jpg', '0001.txt', '0002.jpg', '0002.txt', '0003.png', '0003.txt', '0004.png', '0004.txt', 'manifest.json']);
    for (const f of files.filter((f) => !f.endsWith('.txt') && f !== 'manifest.json')) {
      const meta = await sharp(path.join(out.result!.datasetDir, f)).metadata();
      assert.deepEqual([meta.width, meta.height, meta.channels], [256, 256, 3], f);
    }
    const [r, g, b] = await pixel(path.join(out.result!.datasetDir, '0001.jpg'), 128, 128);
    assert.ok(Math.abs(r - g) < 8 && Math.abs(g - b) < 8, 'grayscale');
    const original = await sharp(path.join(out.result!.datasetDir, '0003.png')).raw().toBuffer({ resolveWithObject: true });
    const mirror = await sharp(path.join(out.result!.datasetDir, '0004.png')).flop().raw().toBuffer();
    // Resampling to the cap is not exactly mirror-symmetric, so compare within a small tolerance.
    const meanDiff = original.data.reduce((sum, v, i) => sum + Math.abs(v - mirror[i]), 0) / original.data.length;
    assert.ok(meanDiff < 2, `the copy is a mirror (mean difference ${meanDiff})`);
  });

  it('resize by max_side, by width/height with fit', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'a.jpg'), await jpeg(800, 400, 41));
    const out = await runJob([path.join(root, 'a.jpg')], {
      config: { sourceRoots: [root] },
      job: {
        transforms: [
          { type: 'resize', width: 300, height: 200, fit: 'contain' },
          { type: 'resize', max_side: 150 },
        ],
      },
    });
    assert.ifError(out.error);
    const meta = await sharp(path.join(out.result!.datasetDir, '0001.jpg')).metadata();
    assert.deepEqual([meta.width, meta.height], [150, 100]);
  });

  it('subject_crop keeps an off-centre subject that center_crop cuts away', async () => {
    const root = await tempDir();
    // A wide photo: plain grey with a textured red-and-blue "product" against its right edge.
    const product = await sharp({ create: { width: 90, height: 120, channels: 3, background: '#ff0000' } })
      .composite([
        {
          input: await sharp({ create: { width: 30, height: 120, channels: 3, background: '#0000ff' } })
            .png()
            .toBuffer(),
          left: 30,
          top: 0,
        },
      ])
      .png()
      .toBuffer();
    const photo = await sharp({ create: { width: 900, height: 400, channels: 3, background: '#d0d0d0' } })
      .composite([{ input: product, left: 780, top: 140 }])
      .png()
      .toBuffer();
    await writeFile(path.join(root, 'shelf.png'), photo);
    const crop = async (type: string, extra: object) => {
      const out = await runJob([path.join(root, 'shelf.png')], { config: { sourceRoots: [root] }, job: { transforms: [{ type, ...extra }] } });
      assert.ifError(out.error);
      const file = path.join(out.result!.datasetDir, '0001.png');
      const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
      let red = 0;
      for (let i = 0; i < data.length; i += info.channels) if (isRed([data[i], data[i + 1], data[i + 2]])) red++;
      return { size: [info.width, info.height], red };
    };
    const centred = await crop('center_crop', { aspect_ratio: '1:1' });
    const subject = await crop('subject_crop', { aspect_ratio: '1:1' });
    assert.deepEqual(centred.size, [400, 400]);
    assert.deepEqual(subject.size, [400, 400], 'the same square, placed elsewhere');
    assert.equal(centred.red, 0, 'the middle of the frame holds none of the product');
    assert.equal(subject.red, 60 * 120, 'the whole of its red is in the crop');
    const resized = await crop('subject_crop', { size: 200 });
    assert.deepEqual(resized.size, [200, 200]);
    assert.ok(resized.red > (0.9 * (60 * 120)) / 4, `scaled to half, the product stays: ${resized.red} red pixels`);
  });

  it('validation errors name the index and the field', () => {
    assert.deepEqual(validateTransforms(null), []);
    assert.deepEqual(validateTransforms([{ type: 'resize', max_side: 1024 }, { type: 'flip_horizontal' }]), []);
    const issues = validateTransforms([
      { type: 'resize', max_side: 1024 },
      { type: 'blur', radius: 3 },
      { type: 'center_crop', size: -5 },
      { type: 'resize', max_side: 512, width: 10 },
      { type: 'pad_to_square', color: 'red' },
      { type: 'grayscale', strength: 2 },
      { type: 'center_crop', aspect_ratio: 'wide' },
      'resize',
      { type: 'resize', fit: 'stretch', width: 20 },
      { type: 'subject_crop', size: 64, aspect_ratio: '1:1' },
    ]);
    const at = (i: number) => issues.filter((x) => x.loc[2] === i).map((x) => [x.loc.join('.'), x.type]);
    assert.deepEqual(at(0), []);
    assert.deepEqual(at(1), [['body.preprocessing_transforms.1.type', 'literal_error']]);
    assert.match(issues.find((x) => x.loc[2] === 1)!.msg, /Unknown transform type "blur"/);
    assert.deepEqual(at(2), [['body.preprocessing_transforms.2.size', 'int_type']]);
    assert.deepEqual(at(3), [['body.preprocessing_transforms.3.max_side', 'value_error']]);
    assert.deepEqual(at(4), [['body.preprocessing_transforms.4.color', 'value_error']]);
    assert.deepEqual(at(5), [['body.preprocessing_transforms.5.strength', 'extra_forbidden']]);
    assert.deepEqual(at(6), [['body.preprocessing_transforms.6.aspect_ratio', 'value_error']]);
    assert.deepEqual(at(7), [['body.preprocessing_transforms.7', 'dict_type']]);
    assert.deepEqual(at(8), [['body.preprocessing_transforms.8.fit', 'literal_error']]);
    assert.deepEqual(at(9), [['body.preprocessing_transforms.9.size', 'value_error']]);
    assert.deepEqual(validateTransforms({ type: 'resize' }), [{ loc: ['body', 'preprocessing_transforms'], msg: 'Input should be a valid list', type: 'list_type' }]);
  });

  it('the stage refuses invalid transforms too', async () => {
    const out = await runJob([], { job: { transforms: [{ type: 'resize' }] } });
    assert.match(out.error!.message, /invalid preprocessing_transforms: \[0\.max_side\] resize needs max_side, width or height/);
  });
});
