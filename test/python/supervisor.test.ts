import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { testConfig } from '../../src/config.js';
import { JobFailure } from '../../src/engine/job-kind.js';
import { supervise } from '../../src/python/supervisor.js';
import { trainingStage } from '../../src/training/stage.js';
import { ProgressAnnouncer } from '../../src/webhooks/outbox.js';
import { openHarness, tmpDir } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';

/** Small stand-in trainers, run by node: each a script of what a trainer process might do. */
function script(dir: string, name: string, body: string): string {
  const file = path.join(dir, `${name}.cjs`);
  fs.writeFileSync(file, body);
  return file;
}

const run = (file: string, extra: Partial<Parameters<typeof supervise>[0]> = {}) => {
  const events: unknown[] = [];
  const abort = new AbortController();
  const dir = path.dirname(file);
  const done = supervise({
    python: process.execPath,
    args: [file],
    env: process.env,
    logFile: path.join(dir, 'log.txt'),
    signal: abort.signal,
    graceMs: 300,
    stallMs: 10_000,
    onEvent: (e) => void events.push(e),
    ...extra,
  });
  return { done, events, abort };
};

describe('trainer supervision', () => {
  test('events arrive in order; other stdout and all stderr go to the log', async () => {
    const dir = tmpDir();
    const file = script(
      dir,
      'ok',
      `
      console.log(JSON.stringify({ type: 'started', steps: 2 }));
      console.log('a stray print');
      console.error('human log line');
      console.log(JSON.stringify({ type: 'step', step: 1, total: 2 }));
      console.log(JSON.stringify({ type: 'completed', weights_path: '/w', steps: 2 }));`,
    );
    const { done, events } = run(file);
    const result = await done;
    assert.equal(result.exitCode, 0);
    assert.deepEqual(
      events.map((e) => (e as { type: string }).type),
      ['started', 'step', 'completed'],
    );
    assert.equal(result.outcome?.type, 'completed');
    const log = fs.readFileSync(path.join(dir, 'log.txt'), 'utf8');
    assert.match(log, /\[stdout\] a stray print/);
    assert.match(log, /human log line/);
  });

  test('a trainer silent past the stall limit is killed', async () => {
    const dir = tmpDir();
    const file = script(dir, 'stall', `console.log(JSON.stringify({ type: 'started' })); setInterval(() => {}, 1000);`);
    const started = Date.now();
    const result = await run(file, { stallMs: 400 }).done;
    assert.equal(result.stalled, true);
    assert.equal(result.exitSignal, 'SIGKILL');
    assert.ok(Date.now() - started < 5000);
  });

  test('a stop is SIGTERM, then SIGKILL for a trainer that ignores it', async () => {
    const dir = tmpDir();
    const polite = script(
      dir,
      'polite',
      `
      process.on('SIGTERM', () => { console.log(JSON.stringify({ type: 'cancelled', step: 3 })); process.exit(0); });
      console.log(JSON.stringify({ type: 'started' })); setInterval(() => {}, 1000);`,
    );
    const a = run(polite);
    // Stop only once it says it started, i.e. after its SIGTERM handler is in place.
    while (a.events.length === 0) await new Promise((r) => setTimeout(r, 20));
    a.abort.abort('cancelled');
    const r1 = await a.done;
    assert.equal(r1.exitCode, 0);
    assert.equal(r1.outcome?.type, 'cancelled');

    const stubborn = script(dir, 'stubborn', `process.on('SIGTERM', () => {}); console.log('{"type":"started"}'); setInterval(() => {}, 1000);`);
    const b = run(stubborn);
    while (b.events.length === 0) await new Promise((r) => setTimeout(r, 20));
    b.abort.abort('cancelled');
    const r2 = await b.done;
    assert.equal(r2.exitSignal, 'SIGKILL');
  });

  test('the memory plan and the images per resolution reach the task log, and a plan that does not fit fails the stage in words', async () => {
    const h = await openHarness('sqlite');
    try {
      const dir = tmpDir();
      const plan = { feasible: true, quantize: 'nf4', reason: 'the base quantized to nf4, 53 of 57 blocks checkpointed: 10.4 of the 10.7 GiB usable on a 12 GiB card' };
      const started = {
        type: 'started',
        model: 'm',
        device: 'cuda',
        dtype: 'bf16',
        trainable_parameters: 1,
        steps: 10,
        start_step: 0,
        training_type: 'LORA',
        memory_plan: plan,
        images: 12,
        images_per_resolution: { '512': 12, '768': 9, '1024': 4 },
      };
      const failing = script(
        dir,
        'memory',
        `console.log(${JSON.stringify(JSON.stringify(started))}); console.log(JSON.stringify({ type: 'error', kind: 'memory', message: 'does not fit: the smallest plan needs 69.1 GiB', where: 'spec' })); process.exit(1);`,
      );
      const wrapper = path.join(dir, 'python');
      fs.writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${failing}"\n`, { mode: 0o755 });
      const config = { ...testConfig(h.config.dataDir), python: wrapper };
      const task = await insertTask(h.runtime.taskStore, { set: { training_folder: path.join(dir, 'task') } });
      const stage = trainingStage({ config, tasks: h.runtime.taskStore, announcer: new ProgressAnnouncer() });
      const logs: string[] = [];
      const update = async (set: { logs?: string | null }) => {
        if (set.logs) logs.push(set.logs);
        return undefined;
      };
      await assert.rejects(
        stage({ row: task, slot: { kind: 'gpu', device: '0' }, signal: new AbortController().signal, update, log: pino({ level: 'silent' }) }),
        (err: Error) => err instanceof JobFailure && /^The training does not fit this GPU's memory: does not fit: the smallest plan needs 69\.1 GiB$/.test(err.message),
      );
      assert.match(logs.join('\n'), /\[kiln\] memory plan: the base quantized to nf4, 53 of 57 blocks checkpointed/);
      assert.match(logs.join('\n'), /\[kiln\] dataset: 12 images, 12 at 512 px, 9 at 768 px, 4 at 1024 px; an image skips each size/);
    } finally {
      await h.close();
    }
  });

  test('an out-of-memory error event fails the stage with the fix to try', async () => {
    const h = await openHarness('sqlite');
    try {
      const dir = tmpDir();
      const oom = script(
        dir,
        'oom',
        `console.log(JSON.stringify({ type: 'error', kind: 'oom', message: 'CUDA out of memory. Tried to allocate 2.00 GiB', where: 'train' })); process.exit(1);`,
      );
      // The stage runs `<python> -m kiln_trainer …`; a wrapper drops those arguments for node.
      const wrapper = path.join(dir, 'python');
      fs.writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${oom}"\n`, { mode: 0o755 });
      const config = { ...testConfig(h.config.dataDir), python: wrapper };
      const task = await insertTask(h.runtime.taskStore, { set: { training_folder: path.join(dir, 'task') } });
      const stage = trainingStage({ config, tasks: h.runtime.taskStore, announcer: new ProgressAnnouncer() });
      await assert.rejects(
        stage({ row: task, slot: { kind: 'cpu', index: 0 }, signal: new AbortController().signal, update: async () => undefined, log: pino({ level: 'silent' }) }),
        (err: Error) => err instanceof JobFailure && /CUDA out of memory/.test(err.message) && /smaller batch_size or rank/.test(err.message),
      );
    } finally {
      await h.close();
    }
  });
});
