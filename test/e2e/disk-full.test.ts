import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig, testConfig } from '../../src/config.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { startServer, type Server } from '../../src/server.js';
import { tmpDir } from '../helpers/harness.js';
import { until } from '../helpers/processes.js';
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
