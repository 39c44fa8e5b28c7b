import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { testConfig } from '../../src/config.js';
import type { Usage } from '../../src/domain/schemas/usage.js';
import type { Manifest } from '../../src/preprocess/manifest.js';
import { startServer, type Server } from '../../src/server.js';
import { tmpDir } from '../helpers/harness.js';
import { photoFolder, runKiln } from './helpers.js';

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

// The one CLI test with the real worker and trainer (tiny model): train --wait, end to end.
describe('kiln train --wait with the embedded worker', { timeout: 180_000 }, () => {
  let server: Server;
  let token: string;
  before(async () => {
    server = await startServer({ ...testConfig(tmpDir('kiln-cli-e2e-')), port: 0, host: '127.0.0.1', logLevel: 'warn' });
    token = await server.runtime.verifier.mint!({ tenantId: 'cli' });
  });
  after(() => server.stop());

  test('follows the task to COMPLETED and downloads the LoRA with a verified sha256', async () => {
    // A .png the CLI uploads that is no picture: preprocessing leaves it out, and the CLI says so.
    // An iPhone's HEIC photo goes up and is trained on like the PNGs.
    const heic = fs.readFileSync(path.join(import.meta.dirname, '..', 'preprocess', 'fixtures', 'iphone-p3-rot6.heic'));
    const folder = await photoFolder(3, { 'IMG_0042.png': 'not a picture', 'IMG_0050.HEIC': heic });
    const out = tmpDir('kiln-cli-out-');
    const kiln = (...args: string[]) => runKiln(args, { server: server.url, token });
    const res = await kiln(
      'train',
      folder,
      '--trigger',
      'CLITOK',
      '--steps',
      '10',
      '--base',
      'builtin:tiny-flux',
      '--sample',
      'a [trigger]',
      '--sample-every',
      '5',
      '--wait',
      '--out',
      out,
    );
    assert.equal(res.code, 0, res.stderr);
    const [id, loraPath] = res.stdout.trim().split('\n');
    assert.equal(loraPath, path.join(out, 'lora.safetensors'));
    // Not a TTY here: plain progress lines, one per status at least.
    assert.match(res.stderr, /^TRAINING\s+\d+\/10/m);

    const listed = (await (await fetch(`${server.url}/api/v1/training/${id}/artifacts`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
      path: string;
      sha256: string;
    }[];
    const weights = listed.find((a) => a.path === 'output/lora.safetensors');
    assert.ok(weights, 'the LoRA is listed');
    assert.equal(sha256(loraPath), weights.sha256);
    assert.deepEqual(fs.readdirSync(out).sort(), ['lora.safetensors', 'samples'], 'no .part file left behind');
    // The samples come along, the base model's (step 0) first, and the output says where they are.
    assert.deepEqual(fs.readdirSync(path.join(out, 'samples')).sort(), ['step_0_0.png', 'step_10_0.png', 'step_5_0.png']);
    assert.ok(res.stderr.includes(`samples: ${path.join(out, 'samples')}`), res.stderr);
    assert.ok(res.stderr.includes(`dashboard: ${server.url}/tasks/${id}`), res.stderr);
    assert.match(res.stderr, /^not trained on \(1\):\n {2}IMG_0042\.png \(upload:\/\/[\w-]+\): not an image \(unrecognised format\)$/m);
    const manifest = listed.find((a) => a.path === 'dataset/manifest.json');
    assert.ok(manifest, 'the manifest is listed');
    const fromIphone = (
      (await (await fetch(`${server.url}/api/v1/training/${id}/artifacts/${manifest.path}`, { headers: { authorization: `Bearer ${token}` } })).json()) as Manifest
    ).entries.find((e) => e.filename === 'IMG_0050.HEIC');
    assert.deepEqual([fromIphone?.status, fromIphone?.format, fromIphone?.outputs.length], ['accepted', 'heif', 1]);

    const status = await kiln('status', id);
    assert.match(status.stdout, /status\s+COMPLETED/);
    assert.match(status.stdout, /step\s+10\/10/);
    const logs = await kiln('logs', id, '-f');
    assert.equal(logs.code, 0, logs.stderr);
    assert.ok(logs.stdout.length > 0, 'the trainer log is printed');

    const sample = listed.find((a) => a.path.startsWith('samples/'));
    assert.ok(sample, 'a sample was rendered');
    const fetched = await kiln('artifacts', id, '--download', sample.path, '--out', out);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.equal(sha256(fetched.stdout.trim()), sample.sha256);

    const images = tmpDir('kiln-cli-gen-');
    const gen = await kiln('generate', '--prompt', 'a [trigger]', '--lora', `${id}:0.8`, '--seed', '7', '--steps', '2', '--width', '64', '--height', '64', '--out', images);
    assert.equal(gen.code, 0, gen.stderr);
    const [image] = gen.stdout.trim().split('\n');
    assert.equal(path.dirname(image), images);
    assert.equal(fs.readFileSync(image).subarray(1, 4).toString(), 'PNG');

    const generations = await kiln('generations', '--lora', id);
    assert.equal(generations.code, 0, generations.stderr);
    const [header, row, ...more] = generations.stdout.trim().split('\n');
    assert.match(header, /^ID\s+STATUS\s+IMAGES\s+LORAS\s+CREATED\s+PROMPT$/);
    assert.match(row, /^[0-9a-f-]{36}\s+COMPLETED\s+1\s+1\s+\S+\s+a \S+$/, 'the generation just made, with its one image and one LoRA');
    assert.deepEqual(more, []);

    // The worker recorded each run with its tenant and slot: preprocessing, training and the generation.
    const used = await kiln('usage', '--json');
    assert.equal(used.code, 0, used.stderr);
    const lines = (JSON.parse(used.stdout) as Usage).usage;
    assert.deepEqual(
      lines.map((l) => [l.job, l.slot, l.runs]),
      [
        ['generate', 'cpu', 1],
        ['preprocess', 'preprocess', 1],
        ['train', 'cpu', 1],
      ],
    );
    assert.ok(lines.every((l) => l.seconds > 0));
    const shown = await kiln('usage');
    assert.match(shown.stdout, /^TENANT\s+JOB\s+SLOT\s+RUNS\s+HOURS$/m);

    // A second task continues from this one's LoRA: the trainer starts from its weights.
    const second = await kiln('train', folder, '--trigger', 'CLITOK', '--steps', '3', '--base', 'builtin:tiny-flux', '--continue', id, '--wait', '--out', tmpDir('kiln-cli-more-'));
    assert.equal(second.code, 0, second.stderr);
    const [next] = second.stdout.trim().split('\n');
    const continued = (await server.runtime.taskStore.get(next))!;
    assert.equal(continued.init_lora_task_id, id);
    const log = fs.readFileSync(path.join(continued.training_folder, 'logs', 'trainer.log'), 'utf8');
    assert.match(log, /continuing from the LoRA .*sources\/init_lora\.safetensors/);
    const own = path.join(continued.training_folder, 'sources', 'init_lora.safetensors');
    assert.equal(sha256(own), sha256(loraPath), 'its own link to the LoRA it continued from');
    const refused = await kiln('train', folder, '--trigger', 'CLITOK', '--base', 'builtin:tiny-flux', '--rank', '4', '--continue', id);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /body\.init_lora_task_id: training task \S+ has rank 16, not 4: set rank to 16 to continue it/);
  });
});
