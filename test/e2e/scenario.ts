import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { REPO_ROOT } from '../../src/config.js';
import type { Generation } from '../../src/domain/schemas/generations.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { isAlive, until } from '../helpers/processes.js';

/** What the scenarios need of a running Kiln: its URL, a token, and where its data dir is. */
export interface Target {
  baseUrl: string;
  token: string;
  dataDir: string;
}

/** Distinct photos (random blocks of colour), PNG, large enough to pass validation. */
export async function makePhotos(count: number, seed = 1): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let state = seed;
  const rand = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < count; i++) {
    const size = 320;
    const raw = Buffer.alloc(size * size * 3);
    const blocks = 8;
    const colours = Array.from({ length: blocks * blocks }, () => [rand() * 255, rand() * 255, rand() * 255]);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const c = colours[Math.floor(y / (size / blocks)) * blocks + Math.floor(x / (size / blocks))];
        raw.set([c[0], c[1], c[2]], (y * size + x) * 3);
      }
    }
    out.push(
      await sharp(raw, { raw: { width: size, height: size, channels: 3 } })
        .png()
        .toBuffer(),
    );
  }
  return out;
}

export function api(t: Target) {
  const headers = { authorization: `Bearer ${t.token}` };
  return {
    /** A JSON request; the answer's body is taken to be a `T` (null when empty). */
    async json<T = unknown>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T }> {
      const res = await fetch(`${t.baseUrl}${url}`, {
        method,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
    },
    async bytes(url: string) {
      const res = await fetch(`${t.baseUrl}${url}`, { headers });
      return { status: res.status, type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
    },
    async upload(files: Buffer[]) {
      const form = new FormData();
      files.forEach((f, i) => form.append('file', new Blob([new Uint8Array(f)], { type: 'image/png' }), `photo-${i}.png`));
      const res = await fetch(`${t.baseUrl}/api/v1/uploads/`, { method: 'POST', headers, body: form });
      assert.equal(res.status, 201, await res.clone().text());
      return ((await res.json()) as { uploads: { reference: string }[] }).uploads.map((u) => u.reference);
    },
    /** Collects the SSE stream of a task until it ends. */
    async streamEvents(taskId: string): Promise<{ event: string; data: Record<string, unknown> }[]> {
      const res = await fetch(`${t.baseUrl}/api/v1/training/${taskId}/events`, { headers });
      assert.equal(res.headers.get('content-type'), 'text/event-stream');
      const events: { event: string; data: Record<string, unknown> }[] = [];
      let buffer = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += Buffer.from(chunk).toString('utf8');
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
          const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? '{}') as Record<string, unknown>;
          events.push({ event, data });
        }
      }
      return events;
    },
  };
}

const TRAIN = {
  trigger_word: 'KLNTOK',
  base_model_path: 'builtin:tiny-flux',
  steps: 30,
  save_every: 15,
  sample_every: 15,
  sample_steps: 2,
  sample_prompts: ['a photo of [trigger]'],
  learning_rate: 0.001,
};

/** POST -> PREPROCESSING -> QUEUED -> TRAINING -> COMPLETED, watched the way a client would. */
export async function trainToCompletion(t: Target): Promise<void> {
  const client = api(t);
  const refs = await client.upload(await makePhotos(4));
  const created = await client.json<TrainingTask>('POST', '/api/v1/training/', { ...TRAIN, source_images: refs });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  const stream = client.streamEvents(id);

  const seen: { status: string; step: number; progress: number; eta: number | null }[] = [];
  const final = await until(
    async () => {
      const { body } = await client.json<TrainingTask>('GET', `/api/v1/training/${id}`);
      seen.push({ status: body.status, step: body.current_step, progress: body.progress, eta: body.eta_seconds });
      return ['COMPLETED', 'FAILED', 'CANCELLED'].includes(body.status) && body;
    },
    'the task to finish',
    240_000,
    100,
  );
  assert.equal(final.status, 'COMPLETED', final.error_message ?? undefined);

  const order = ['PENDING', 'PREPROCESSING', 'QUEUED', 'TRAINING', 'COMPLETED'];
  const statuses = seen.map((s) => s.status).filter((s, i, a) => a[i - 1] !== s);
  assert.deepEqual(
    statuses,
    [...statuses].sort((a, b) => order.indexOf(a) - order.indexOf(b)),
    `statuses in order: ${statuses.join(',')}`,
  );
  assert.ok(statuses.includes('TRAINING'), `saw ${statuses.join(',')}`);
  for (let i = 1; i < seen.length; i++) {
    assert.ok(seen[i].step >= seen[i - 1].step, 'current_step never goes back');
    assert.ok(seen[i].progress >= seen[i - 1].progress, 'progress never goes back');
  }
  assert.ok(
    seen.some((s) => s.status === 'TRAINING' && s.eta !== null && s.eta >= 0),
    'an ETA is shown during training',
  );
  assert.equal(final.current_step, 30);
  assert.equal(final.progress, 100);
  assert.ok(final.started_at && final.completed_at && final.preprocessing_completed_at);
  assert.match(final.celery_training_task_id ?? '', new RegExp(`^${id}:train:1$`));

  const events = await stream;
  const steps = events.filter((e) => e.event === 'step').map((e) => e.data.step as number);
  assert.deepEqual(
    steps,
    Array.from({ length: 30 }, (_, i) => i + 1),
    'SSE delivers every step, in order',
  );
  assert.ok(events.some((e) => e.event === 'sample'));
  assert.equal(events.at(-1)!.event, 'end');

  const artifacts = (await client.json<{ path: string; kind: string; sha256: string; size: number }[]>('GET', `/api/v1/training/${id}/artifacts`)).body;
  for (const kind of ['weights', 'checkpoint', 'sample', 'manifest', 'log'])
    assert.ok(
      artifacts.some((a) => a.kind === kind),
      `${kind} listed`,
    );
  const sample = artifacts.find((a) => a.kind === 'sample')!;
  const png = await client.bytes(`/api/v1/training/${id}/artifacts/${sample.path}`);
  assert.equal(png.type, 'image/png');
  assert.equal(createHash('sha256').update(png.body).digest('hex'), sample.sha256);
  const weights = artifacts.find((a) => a.path === 'output/lora.safetensors')!;
  const lora = await client.bytes(`/api/v1/training/${id}/artifacts/${weights.path}`);
  assert.equal(createHash('sha256').update(lora.body).digest('hex'), weights.sha256);
  assert.equal(final.local_model_path, path.join(t.dataDir, 'tasks', id, 'output', 'lora.safetensors'));
  assert.equal((await client.bytes(`/api/v1/training/${id}/artifacts/../../secrets/jwt-secret`)).status, 404);

  // The downloaded LoRA loads with diffusers' own loader into the very base it was trained on.
  const downloaded = path.join(t.dataDir, 'downloaded-lora.safetensors');
  fs.writeFileSync(downloaded, lora.body);
  const check = execFileSync(
    path.join(REPO_ROOT, '.venv/bin/python'),
    [
      '-c',
      'import sys; from diffusers import FluxPipeline; p = FluxPipeline.from_pretrained(sys.argv[1]); p.load_lora_weights(sys.argv[2]); print("adapters", p.get_list_adapters())',
      path.join(REPO_ROOT, 'trainer', 'kiln_trainer', 'tiny_flux'),
      downloaded,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  );
  assert.match(check, /adapters \{'transformer': \[/);

  const gen = await client.json<Generation>('POST', '/api/v1/generations/', { prompt: 'a photo of [trigger]', loras: [{ training_task_id: id, scale: 1 }], seed: 7 });
  assert.equal(gen.status, 202, JSON.stringify(gen.body));
  assert.equal(gen.body.prompt, 'a photo of KLNTOK');
  const done = await until(
    async () => {
      const g = (await client.json<Generation>('GET', `/api/v1/generations/${gen.body.id}`)).body;
      return ['COMPLETED', 'FAILED'].includes(g.status) && g;
    },
    'the generation',
    120_000,
    200,
  );
  assert.equal(done.status, 'COMPLETED', done.error_message ?? undefined);
  const image = await fetch(done.images[0], { headers: { authorization: `Bearer ${t.token}` } });
  assert.equal(image.headers.get('content-type'), 'image/png');
  const meta = await sharp(Buffer.from(await image.arrayBuffer())).metadata();
  assert.equal(meta.format, 'png');
}

async function startLongRun(t: Target): Promise<{ id: string; pid: number }> {
  const client = api(t);
  const refs = await client.upload(await makePhotos(2, 99));
  const created = await client.json<TrainingTask>('POST', '/api/v1/training/', { ...TRAIN, steps: 5000, save_every: 5000, sample_prompts: [], source_images: refs });
  assert.equal(created.status, 201);
  const id = created.body.id;
  await until(async () => (await client.json<TrainingTask>('GET', `/api/v1/training/${id}`)).body.current_step > 0, 'training steps', 180_000, 200);
  const pid = Number(fs.readFileSync(path.join(t.dataDir, 'tasks', id, 'logs', 'trainer.pid'), 'utf8'));
  assert.ok(isAlive(pid));
  return { id, pid };
}

/** A cancel during TRAINING: CANCELLED at once, the trainer process gone within 10 s. */
export async function cancelDuringTraining(t: Target): Promise<void> {
  const client = api(t);
  const { id, pid } = await startLongRun(t);
  const at = Date.now();
  const res = await client.json<TrainingTask>('POST', `/api/v1/training/${id}/cancel`);
  assert.equal(res.status, 200);
  assert.equal(res.body.status, 'CANCELLED');
  await until(async () => !isAlive(pid), `trainer pid ${pid} to exit`, 10_000, 50);
  const stoppedIn = Date.now() - at;
  assert.ok(stoppedIn < 10_000, `stopped in ${stoppedIn} ms`);
  const after = (await client.json<TrainingTask>('GET', `/api/v1/training/${id}`)).body;
  assert.equal(after.status, 'CANCELLED');
}

/** A trainer killed from outside: the task fails and says how the trainer died. */
export async function trainerKilledFromOutside(t: Target): Promise<void> {
  const client = api(t);
  const { id, pid } = await startLongRun(t);
  process.kill(pid, 'SIGKILL');
  const failed = await until(
    async () => {
      const body = (await client.json<TrainingTask>('GET', `/api/v1/training/${id}`)).body;
      return body.status !== 'TRAINING' && body;
    },
    'the task to fail',
    30_000,
    100,
  );
  assert.equal(failed.status, 'FAILED');
  assert.match(failed.error_message ?? '', /trainer was killed by SIGKILL/);
}

/**
 * A trainer whose gradients go non-finite (the fault variable poisons steps 3, 4 and 5):
 * the task is FAILED with the trainer's "non-finite" message, never COMPLETED, the skips
 * reach the event stream, and no weights are offered for download.
 */
export async function nonFiniteTrainingFails(t: Target): Promise<void> {
  const client = api(t);
  const refs = await client.upload(await makePhotos(2, 7));
  process.env.KILN_FAULT_NAN_GRAD_STEPS = '3,4,5';
  try {
    const created = await client.json<TrainingTask>('POST', '/api/v1/training/', { ...TRAIN, steps: 20, save_every: 2, sample_prompts: [], source_images: refs });
    assert.equal(created.status, 201);
    const id = created.body.id;
    const failed = await until(
      async () => {
        const body = (await client.json<TrainingTask>('GET', `/api/v1/training/${id}`)).body;
        return ['COMPLETED', 'FAILED', 'CANCELLED'].includes(body.status) && body;
      },
      'the task to finish',
      180_000,
      100,
    );
    assert.equal(failed.status, 'FAILED');
    assert.match(failed.error_message ?? '', /^Training diverged: non-finite gradient norm \(nan\) at step 5: .*3 steps in a row/);
    assert.match(failed.error_message ?? '', /dtype fp32, attention \[flash, efficient, math\], torch /);
    assert.equal(failed.local_model_path, null);
    const events = await client.streamEvents(id);
    assert.deepEqual(
      events.filter((e) => e.event === 'skipped_step').map((e) => e.data.step),
      [3, 4],
    );
    const artifacts = (await client.json<{ kind: string }[]>('GET', `/api/v1/training/${id}/artifacts`)).body;
    assert.ok(!artifacts.some((a) => a.kind === 'weights'), 'no weights from a diverged run');
  } finally {
    delete process.env.KILN_FAULT_NAN_GRAD_STEPS;
  }
}
