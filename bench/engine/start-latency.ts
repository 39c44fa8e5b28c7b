/**
 * How soon a new task starts preprocessing after its POST, on the embedded default (SQLite,
 * the in-process worker): the time from the row's created_at to its preprocessing_started_at,
 * both written by this process. The worker as wired by `kiln serve` (woken by the commit of
 * the insert) is measured against the same worker woken only by its poll, which is how a
 * new task waited before. Each task's claim is checked before its time counts.
 *
 * Run directly: node --import tsx bench/engine/start-latency.ts [--tasks N]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import sharp from 'sharp';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../../src/config.js';
import { generateKind, preprocessKind, trainKind } from '../../src/engine/kinds.js';
import { Worker } from '../../src/engine/worker.js';
import { generationStage } from '../../src/generations/stage.js';
import { preprocessingStage } from '../../src/preprocess/stage.js';
import { openRuntime, type Runtime } from '../../src/runtime.js';
import { trainingStage } from '../../src/training/stage.js';
import { ProgressAnnouncer } from '../../src/webhooks/outbox.js';
import { startWorker } from '../../src/worker-process.js';
import { formatMachine } from '../lib/machine.js';
import { isMain } from '../lib/paths.js';
import { percentile, round } from '../lib/stats.js';
import { printTable } from '../lib/table.js';

export interface StartLatencyRow {
  bench: 'start-latency';
  worker: string;
  tasks: number;
  p50_ms: number;
  p95_ms: number;
  max_ms: number;
}

const silent = pino({ level: 'silent' });

/** The embedded worker without the in-process wake-up: it finds new work on its next poll. */
async function pollOnlyWorker(runtime: Runtime) {
  const { config, taskStore, generationStore } = runtime;
  const worker = new Worker({
    store: runtime.store,
    config,
    kinds: [
      preprocessKind(taskStore, preprocessingStage(config)),
      generateKind(generationStore, generationStage(config)),
      trainKind(taskStore, trainingStage({ config, tasks: taskStore, announcer: new ProgressAnnouncer() })),
    ],
    log: silent,
    slots: { accelerator: [{ kind: 'cpu', index: 0 }], preprocess: 1 },
  });
  await worker.start();
  return { stop: () => worker.stop() };
}

async function measure(name: string, start: (runtime: Runtime) => Promise<{ stop(): Promise<void> }>, tasks: number): Promise<StartLatencyRow> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-start-'));
  const config = testConfig(dataDir, { logLevel: 'silent', preprocessSlots: 1, cpuSlots: 1, gpus: [] });
  const runtime = await openRuntime(config);
  const app = await buildApp(runtime, { logger: false });
  const running = await start(runtime);
  const token = await runtime.verifier.mint!({ tenantId: 'bench', admin: false, ttlSeconds: 600 });
  const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#c33' } })
    .png()
    .toBuffer();
  const latencies: number[] = [];
  try {
    for (let i = 0; i < tasks; i++) {
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/training/',
        headers: { authorization: `Bearer ${token}` },
        payload: { trigger_word: `BENCH${i}`, base_model_path: 'builtin:tiny-flux', source_images: [`data:image/png;base64,${png.toString('base64')}`] },
      });
      if (res.statusCode !== 201) throw new Error(`POST answered ${res.statusCode}: ${res.body}`);
      const id = res.json<{ id: string }>().id;
      let row;
      for (const until = Date.now() + 10_000; Date.now() < until; await new Promise((r) => setTimeout(r, 2))) {
        row = await runtime.taskStore.get(id);
        if (row?.preprocessing_started_at) break;
      }
      if (!row?.preprocessing_started_at || row.attempt !== 1) throw new Error(`task ${id} was not claimed for preprocessing within 10 s`);
      latencies.push(Date.parse(row.preprocessing_started_at) - Date.parse(row.created_at));
      // Out of the way before the next one, so each task finds a free preprocessing slot.
      await runtime.tasks.cancel(id, { subject: 'bench', tenantId: 'bench', admin: false });
      for (const until = Date.now() + 10_000; Date.now() < until && (await runtime.taskStore.get(id))?.lease_owner;) await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    await running.stop();
    await app.close();
    await runtime.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  return { bench: 'start-latency', worker: name, tasks, p50_ms: round(percentile(latencies, 50)), p95_ms: round(percentile(latencies, 95)), max_ms: round(Math.max(...latencies)) };
}

export async function benchStartLatency(opts: { tasks?: number } = {}): Promise<StartLatencyRow[]> {
  const tasks = opts.tasks ?? 40;
  const slots = { gpus: [], cpuSlots: 1, preprocess: 1 };
  return [await measure('kiln serve (woken by the insert)', (runtime) => startWorker(runtime, silent, slots), tasks), await measure('poll only (500 ms)', pollOnlyWorker, tasks)];
}

if (isMain(import.meta.url)) {
  const i = process.argv.indexOf('--tasks');
  const rows = await benchStartLatency({ tasks: i > 0 ? Number(process.argv[i + 1]) : undefined });
  console.log(formatMachine());
  printTable('POST → preprocessing started, embedded default (SQLite)', rows, ['worker', 'tasks', 'p50_ms', 'p95_ms', 'max_ms']);
  process.exit(0);
}
