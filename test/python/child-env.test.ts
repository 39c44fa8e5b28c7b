import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import sharp from 'sharp';
import { CONFIG_VARS, testConfig } from '../../src/config.js';
import { taskPaths } from '../../src/domain/task-folder.js';
import { childEnv } from '../../src/python/child-env.js';
import { trainingStage } from '../../src/training/stage.js';
import { ProgressAnnouncer } from '../../src/webhooks/outbox.js';
import { openHarness } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';

/** Service secrets as a deployment sets them, each value unique so a leak is found by value too. */
const SECRETS = {
  KILN_JWT_SECRET: 'jwt-secret-that-must-stay-home-4f1c',
  KILN_DATABASE_URL: 'postgres://kiln:db-password-that-must-stay-home-9a2e@db/kiln',
  KILN_WEBHOOK_SECRET: 'whsec_d2ViaG9vay1zZWNyZXQtdGhhdC1tdXN0LXN0YXk=',
  KILN_VLM_API_KEY: 'vlm-key-that-must-stay-home-77b0',
};
/** A real fault hook the trainer reads, at a step the run is cancelled long before. */
const FAULT = { KILN_FAULT_NAN_GRAD_STEPS: '999' };

/** The environment of a running process, as the kernel holds it. */
function environOf(pid: number): Map<string, string> {
  const entries = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  return new Map(entries.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

describe('the environment of Python children', () => {
  test('no service setting reaches a child: of KILN_*, only the fault hooks and what the service sets for it', () => {
    const config = testConfig('/tmp/kiln-unused');
    const parent = { ...Object.fromEntries(CONFIG_VARS.map((v) => [v.name, `value-of-${v.name}`])), ...SECRETS, ...FAULT, PATH: '/usr/bin', HF_TOKEN: 'hf_x' };
    const env = childEnv(config, { kind: 'gpu', device: '1' }, parent);
    const kiln = Object.keys(env)
      .filter((name) => name.startsWith('KILN_'))
      .sort();
    assert.deepEqual(kiln, ['KILN_FAULT_NAN_GRAD_STEPS', 'KILN_LOG_LEVEL']);
    assert.equal(env.KILN_LOG_LEVEL, 'INFO');
    for (const value of Object.values(env)) assert.ok(!String(value).startsWith('value-of-') && !Object.values(SECRETS).includes(String(value)), value);
    assert.equal(env.PATH, '/usr/bin');
    assert.equal(env.HF_TOKEN, 'hf_x');
    assert.equal(env.CUDA_VISIBLE_DEVICES, '1');
  });

  test(
    'a running trainer holds none of the service secrets, and what torch and the fault hooks need',
    { skip: !fs.existsSync('/proc/self/environ') && 'needs /proc' },
    async () => {
      const saved = { ...process.env };
      Object.assign(process.env, SECRETS, FAULT);
      const h = await openHarness('sqlite');
      try {
        const folder = path.join(h.config.dataDir, 'tasks', 'env');
        const paths = taskPaths(folder);
        fs.mkdirSync(paths.dataset, { recursive: true });
        for (const [i, r] of [40, 200].entries()) {
          await sharp({ create: { width: 64, height: 64, channels: 3, background: { r, g: 90, b: 160 } } })
            .png()
            .toFile(path.join(paths.dataset, `${i}.png`));
        }
        const task = await insertTask(h.runtime.taskStore, { set: { training_folder: folder, base_model_path: 'builtin:tiny-flux', optimizer: 'adamw', steps: 100000 } });
        const stop = new AbortController();
        let environ: Map<string, string> | null = null;
        const stage = trainingStage({ config: h.config, tasks: h.runtime.taskStore, announcer: new ProgressAnnouncer() });
        const result = await stage({
          row: task,
          slot: { kind: 'cpu', index: 0 },
          signal: stop.signal,
          // The first progress write comes with the trainer's `started` event: it is up and about to train.
          update: async () => {
            if (!environ) {
              environ = environOf(Number(fs.readFileSync(paths.trainerPid, 'utf8')));
              stop.abort('cancelled');
            }
            return undefined;
          },
          log: pino({ level: 'silent' }),
        });
        assert.deepEqual(result, {});
        const env = environ as Map<string, string> | null;
        assert.ok(env, 'the trainer never reported that it started');
        for (const name of Object.keys(SECRETS)) assert.equal(env.has(name), false, name);
        const values = [...env.values()].join('\n');
        for (const value of Object.values(SECRETS)) assert.ok(!values.includes(value), 'a secret value reached the trainer');
        assert.equal(env.get('PATH'), process.env.PATH);
        assert.equal(env.get('KILN_FAULT_NAN_GRAD_STEPS'), FAULT.KILN_FAULT_NAN_GRAD_STEPS);
        assert.equal(env.has('KILN_DATA_DIR'), false);
        assert.equal(env.get('CUDA_VISIBLE_DEVICES'), '');
      } finally {
        await h.close();
        for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
        Object.assign(process.env, saved);
      }
    },
  );
});
