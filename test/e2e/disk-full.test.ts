import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { loadConfig, testConfig } from '../../src/config.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { startServer, type Server } from '../../src/server.js';
import { tmpDir } from '../helpers/harness.js';
import { freePort } from '../helpers/free-port.js';
import { mintToken, startKiln, until, waitForHttp, type KilnProcess } from '../helpers/processes.js';
import { api, makePhotos, type Target } from './scenario.js';

/** A 256 KiB tmpfs in a private user and mount namespace: no root needed where the kernel allows those. */
function canMountTmpfs(): boolean {
  try {
    const dir = tmpDir('kiln-mount-');
    execFileSync('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c', 'mount -t tmpfs -o size=256k tmpfs "$0"', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// The real trainer, whose task's checkpoints folder is a 256 KiB tmpfs: the kernel refuses its
// first checkpoint with ENOSPC, as a full disk does. The wrapper takes the place of KILN_PYTHON.
describe('end to end: the disk fills up during training', { timeout: 300_000, skip: !canMountTmpfs() && 'cannot mount a tmpfs in a user namespace here' }, () => {
  let server: Server;
  let target: Target;
  before(async () => {
    const dataDir = tmpDir('kiln-e2e-disk-');
    const wrapper = path.join(dataDir, 'python-on-full-disk');
    fs.writeFileSync(
      wrapper,
      [
        '#!/bin/sh',
        '# Called as <python> -m kiln_trainer train --spec <task>/logs/trainer-spec.json',
        'checkpoints="$(dirname "$(dirname "$5")")/checkpoints"',
        'mkdir -p "$checkpoints"',
        `exec unshare --user --map-root-user --mount sh -c 'mount -t tmpfs -o size=256k tmpfs "$0" && exec "$@"' "$checkpoints" "${loadConfig().python}" "$@"`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    server = await startServer({ ...testConfig(dataDir), python: wrapper, port: 0, host: '127.0.0.1', logLevel: 'warn' });
    target = { baseUrl: server.url, token: await server.runtime.verifier.mint!({ tenantId: 'e2e' }), dataDir };
  });
  after(() => server.stop());

  test('the task FAILS with a message that says the disk is full and what frees space', async () => {
    const client = api(target);
    const created = await client.json<TrainingTask>('POST', '/api/v1/training/', {
      trigger_word: 'KLNDISK',
      base_model_path: 'builtin:tiny-flux',
      steps: 6,
      save_every: 2,
      sample_prompts: [],
      source_images: await client.upload(await makePhotos(2, 21)),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const failed = await until(
      async () => {
        const body = (await client.json<TrainingTask>('GET', `/api/v1/training/${created.body.id}`)).body;
        return ['COMPLETED', 'FAILED', 'CANCELLED'].includes(body.status) && body;
      },
      'the task to finish',
      240_000,
      200,
    );
    assert.equal(failed.status, 'FAILED');
    assert.match(
      failed.error_message ?? '',
      /^The trainer could not write to the data dir's disk: .*No space left on device.*\. Free space on it \(deleting finished tasks frees theirs; a lower max_step_saves_to_keep keeps fewer checkpoints\), then retry the task\.$/,
    );
    assert.ok(failed.current_step >= 2, `it trained up to the first checkpoint (step ${failed.current_step})`);
  });
});

// The whole service (`kiln serve`, SQLite, the in-process worker) with its data dir on a 16 MiB
// tmpfs, and KILN_MIN_FREE_DISK_MB at 8: uploads fill the disk for real.
describe('end to end: the data dir on a small disk', { timeout: 120_000, skip: !canMountTmpfs() && 'cannot mount a tmpfs in a user namespace here' }, () => {
  const MIB = 2 ** 20;
  let kiln: KilnProcess;
  let baseUrl: string;
  let headers: Record<string, string>;
  const upload = (...files: [string, number][]) =>
    uploadTo(
      baseUrl,
      headers,
      files.map(([name, size]) => [name, new Uint8Array(size).fill(7)]),
    );
  const freeBytes = () => freeBytesOf(baseUrl);

  before(async () => {
    ({ kiln, baseUrl, headers } = await serveOnTmpfs(16, 8));
  });
  after(() => kiln.stop());

  test('a request that fills the disk is a 507 that keeps none of its files; past the minimum, uploads wait and so does the work', async () => {
    const photo = await upload(['photo.png', 4096]);
    assert.equal(photo.status, 201, JSON.stringify(photo.body));
    const before = await freeBytes();
    assert.ok(before > 8 * MIB && before < 16 * MIB, `free: ${before}`);

    const filled = await upload(['fits.png', MIB], ['too-big.png', 30 * MIB]);
    assert.equal(filled.status, 507, JSON.stringify(filled.body));
    assert.equal(filled.body.detail, 'The data dir\'s disk filled up while storing "too-big.png"; nothing of this request was kept');
    assert.ok(Math.abs((await freeBytes()) - before) < 256 * 1024, 'the space the request took is free again');

    const large = await upload(['large.png', before - 6 * MIB]);
    assert.equal(large.status, 201, JSON.stringify(large.body));
    const refused = await upload(['photo-2.png', 4096]);
    assert.equal(refused.status, 507);
    assert.equal(refused.retryAfter, '300');
    assert.match(refused.body.detail ?? '', /^Uploads are refused while the data dir's disk has [0-7] MiB free, under the 8 MiB it keeps \(KILN_MIN_FREE_DISK_MB\)$/);

    const created = await fetch(`${baseUrl}/api/v1/training/`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ trigger_word: 'KLNSMALL', base_model_path: 'builtin:tiny-flux', steps: 2, source_images: [photo.body.uploads![0].reference] }),
    });
    assert.equal(created.status, 201);
    const task = (await created.json()) as TrainingTask;
    const statusOf = async () => ((await (await fetch(`${baseUrl}/api/v1/training/${task.id}`, { headers })).json()) as TrainingTask).status;
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(await statusOf(), 'PENDING', 'the worker claims nothing while the disk is short');
    assert.match(fs.readFileSync(kiln.logFile, 'utf8'), /claiming no work: the data dir's disk has \d+ MiB free, under the 8 MiB it keeps/);

    const freed = await fetch(`${baseUrl}/api/v1/uploads/${large.body.uploads![0].id}`, { method: 'DELETE', headers });
    assert.equal(freed.status, 204);
    await until(async () => (await statusOf()) !== 'PENDING', 'the worker to take the task once space is back', 30_000, 200);
    assert.match(fs.readFileSync(kiln.logFile, 'utf8'), /disk space is back above KILN_MIN_FREE_DISK_MB: claiming work again/);
  });
});

// A disk that fills while preprocessing writes the dataset: 32 MiB, of which a filler upload
// leaves 10 free (above the 2 MiB floor, so the worker claims), and four outputs of a noise photo.
describe('end to end: the disk fills during preprocessing', { timeout: 120_000, skip: !canMountTmpfs() && 'cannot mount a tmpfs in a user namespace here' }, () => {
  const MIB = 2 ** 20;
  let kiln: KilnProcess;
  let baseUrl: string;
  let headers: Record<string, string>;
  before(async () => {
    ({ kiln, baseUrl, headers } = await serveOnTmpfs(32, 2));
  });
  after(() => kiln.stop());

  test('the task FAILS saying the disk is full, not that the photo was bad, and the half-written dataset is gone', async () => {
    const noise = new Uint8Array(1536 * 1536 * 3).map(() => Math.floor(Math.random() * 256));
    const photo = await sharp(noise, { raw: { width: 1536, height: 1536, channels: 3 } })
      .png({ compressionLevel: 0 })
      .toBuffer();
    const source = await uploadTo(baseUrl, headers, [['noise.png', new Uint8Array(photo)]]);
    assert.equal(source.status, 201, JSON.stringify(source.body));
    const filler = await uploadTo(baseUrl, headers, [['filler.png', new Uint8Array((await freeBytesOf(baseUrl)) - 10 * MIB).fill(7)]]);
    assert.equal(filler.status, 201, JSON.stringify(filler.body));
    const before = await freeBytesOf(baseUrl);

    const created = await fetch(`${baseUrl}/api/v1/training/`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({
        trigger_word: 'KLNFULL',
        base_model_path: 'builtin:tiny-flux',
        steps: 2,
        source_images: [source.body.uploads![0].reference],
        // Each flip doubles the outputs: four copies of 7 MiB, into 10 MiB.
        preprocessing_transforms: [{ type: 'flip_horizontal' }, { type: 'flip_horizontal' }],
      }),
    });
    assert.equal(created.status, 201);
    const { id } = (await created.json()) as TrainingTask;
    const failed = await until(
      async () => {
        const task = (await (await fetch(`${baseUrl}/api/v1/training/${id}`, { headers })).json()) as TrainingTask;
        return ['COMPLETED', 'FAILED', 'CANCELLED'].includes(task.status) && task;
      },
      'the task to finish',
      60_000,
      200,
    );
    assert.equal(failed.status, 'FAILED');
    assert.match(failed.error_message ?? '', /^The data dir's disk is full \(ENOSPC: no space left on device.*\); free space on it, then retry$/);
    assert.ok(Math.abs((await freeBytesOf(baseUrl)) - before) < MIB, 'the dataset it began is removed');
  });
});

/** `kiln serve` with its data dir on a tmpfs of `sizeMib`, keeping `minFreeMib` free. */
async function serveOnTmpfs(sizeMib: number, minFreeMib: number): Promise<{ kiln: KilnProcess; baseUrl: string; headers: Record<string, string> }> {
  const dataDir = tmpDir('kiln-e2e-small-disk-');
  const port = await freePort();
  const logFile = path.join(tmpDir('kiln-e2e-small-disk-log-'), 'kiln.log');
  const kiln = startKiln(['serve'], { KILN_DATA_DIR: dataDir, KILN_PORT: String(port), KILN_MIN_FREE_DISK_MB: String(minFreeMib) }, logFile, {
    wrap: ['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c', `mount -t tmpfs -o size=${sizeMib}m tmpfs "$0" && exec "$@"`, dataDir],
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitForHttp(`${baseUrl}/healthz`);
  return { kiln, baseUrl, headers: { authorization: `Bearer ${await mintToken('acme')}` } };
}

async function uploadTo(baseUrl: string, headers: Record<string, string>, files: [string, Uint8Array<ArrayBuffer>][]) {
  const form = new FormData();
  for (const [name, bytes] of files) form.append('files', new Blob([bytes], { type: 'image/png' }), name);
  const res = await fetch(`${baseUrl}/api/v1/uploads/`, { method: 'POST', headers, body: form });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { detail?: string; uploads?: { id: string; reference: string }[] } };
}

async function freeBytesOf(baseUrl: string): Promise<number> {
  return Number(/^kiln_data_dir_free_bytes (\d+)$/m.exec(await (await fetch(`${baseUrl}/metrics`)).text())?.[1]);
}
