import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { makeDemoImages } from '../../examples/demo/make-images.js';
import { REPO_ROOT, testConfig } from '../../src/config.js';
import type { Artifact } from '../../src/domain/schemas/artifacts.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { startServer, type Server } from '../../src/server.js';
import { tmpDir } from '../helpers/harness.js';
import { api, type Target } from './scenario.js';

const STEPS = 300;
const SAMPLE_EVERY = 100;
const TRIGGER_PROMPT = 'a photo of [trigger]';
// A scene the base model knows, which the mugs have nothing to do with.
const UNRELATED = 'a red circle on a white background';
const PICTURE = path.join(REPO_ROOT, 'docs', 'images', 'demo-learning.png');

interface Sample {
  step: number;
  prompt: string;
  path: string;
  histogram_l1: number;
}

/** The mean RGB of a square of an image, each side a fraction of the image's. */
async function meanColour(png: Buffer, x0: number, y0: number, side: number): Promise<number[]> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const [left, top, n] = [Math.round(x0 * info.width), Math.round(y0 * info.height), Math.round(side * info.width)];
  const sum = [0, 0, 0];
  for (let y = top; y < top + n; y++) for (let x = left; x < left + n; x++) for (let c = 0; c < 3; c++) sum[c] += data[(y * info.width + x) * 3 + c];
  return sum.map((s) => s / (n * n));
}

// The tiny model is pretrained on shapes; the demo's teal mugs are a concept it has never seen.
// Through the API of the embedded service, a LoRA at the demo's settings moves the trigger
// prompt's samples towards the photos (the trainer's colour-histogram distance), and leaves a
// prompt about something else drawn as before.
describe('a LoRA on the tiny model learns what the photos show', { timeout: 600_000 }, () => {
  let server: Server;
  let target: Target;
  let photos: string[];
  before(async () => {
    const dataDir = tmpDir('kiln-learning-');
    server = await startServer({ ...testConfig(dataDir), port: 0, host: '127.0.0.1', logLevel: 'warn' });
    target = { baseUrl: server.url, token: await server.runtime.verifier.mint!({ tenantId: 'learning' }), dataDir };
    photos = await makeDemoImages(path.join(dataDir, 'photos'));
  });
  after(() => server.stop());

  test(`${STEPS} steps at lr 3e-3: trigger samples at least 30% closer to the photos, an unrelated prompt unchanged`, async () => {
    const client = api(target);
    const references = await client.upload(photos.map((f) => fs.readFileSync(f)));
    const created = await client.json<TrainingTask>('POST', '/api/v1/training/', {
      trigger_word: 'MUGTOK',
      base_model_path: 'builtin:tiny-flux',
      source_images: references,
      steps: STEPS,
      learning_rate: 0.003,
      sample_every: SAMPLE_EVERY,
      sample_prompts: [TRIGGER_PROMPT, UNRELATED],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id;
    const events = await client.streamEvents(id);
    const task = (await client.json<TrainingTask>('GET', `/api/v1/training/${id}`)).body;
    assert.equal(task.status, 'COMPLETED', task.error_message ?? undefined);

    const samples = events.filter((e) => e.event === 'sample').map((e) => e.data as unknown as Sample);
    const at = (prompt: string, step: number) => {
      const found = samples.find((s) => s.prompt === prompt.replace('[trigger]', 'MUGTOK') && s.step === step);
      assert.ok(found, `a sample of "${prompt}" at step ${step}`);
      return found;
    };
    const steps = [0, ...Array.from({ length: STEPS / SAMPLE_EVERY }, (_, i) => (i + 1) * SAMPLE_EVERY)];
    const trigger = steps.map((s) => at(TRIGGER_PROMPT, s));
    const [base, trained] = [trigger[0], trigger[trigger.length - 1]];
    assert.ok(trained.histogram_l1 <= 0.7 * base.histogram_l1, `trigger prompt: distance to the photos ${base.histogram_l1} at step 0, ${trained.histogram_l1} at step ${STEPS}`);
    const [unrelatedBase, unrelatedAfter] = [at(UNRELATED, 0), at(UNRELATED, STEPS)];
    assert.ok(
      Math.abs(unrelatedAfter.histogram_l1 - unrelatedBase.histogram_l1) <= 0.1 * unrelatedBase.histogram_l1,
      `unrelated prompt: distance ${unrelatedBase.histogram_l1} at step 0, ${unrelatedAfter.histogram_l1} at step ${STEPS}`,
    );

    // The unrelated prompt still draws its scene: a shape in the middle, white corners. (Its
    // red drifts towards brown: on a model this small, a rank-16 LoRA reaches every prompt a little.)
    const artifacts = (await client.json<Artifact[]>('GET', `/api/v1/training/${id}/artifacts`)).body;
    const png = async (s: Sample) => {
      const artifact = artifacts.find((a) => a.kind === 'sample' && a.path.endsWith(`/${path.basename(s.path)}`));
      assert.ok(artifact, `${s.path} is listed`);
      return (await client.bytes(`/api/v1/training/${id}/artifacts/${artifact.path}`)).body;
    };
    const circle = await png(unrelatedAfter);
    const middle = await meanColour(circle, 0.375, 0.375, 0.25);
    assert.ok(Math.max(...middle) === middle[0] && middle[0] > middle[2] + 40 && Math.min(...middle) < 120, `the middle is red or brown: ${middle.map(Math.round).join(',')}`);
    const corner = await meanColour(circle, 0, 0, 0.125);
    assert.ok(Math.min(...corner) > 180, `the corner is white: ${corner.map(Math.round).join(',')}`);

    // The README's picture: a photo, then the trigger prompt's samples from the base model on.
    const cell = 128;
    const tiles = [photos[0], ...(await Promise.all(trigger.map(png)))];
    const resized = await Promise.all(tiles.map((t) => sharp(t).resize(cell, cell, { kernel: 'nearest' }).png().toBuffer()));
    fs.mkdirSync(path.dirname(PICTURE), { recursive: true });
    await sharp({ create: { width: cell * tiles.length + 4 * (tiles.length - 1), height: cell, channels: 3, background: '#ffffff' } })
      .composite(resized.map((input, i) => ({ input, left: i * (cell + 4), top: 0 })))
      .png()
      .toFile(PICTURE);
  });
});
