/**
 * The trainer on this machine's CPU, on the built-in tiny model:
 *  - steps per second at two resolutions, run directly (`python -m kiln_trainer train`);
 *  - the cost of supervision: the same spec trained through a worker (API, queue, trainer
 *    supervisor, progress writes) and directly, comparing the training loop's wall time;
 *  - time from POST to the first training step, with the model load taken out.
 * Each figure is checked against the work: every step event seen, the weights file written.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { testConfig } from '../../src/config.js';
import { startServer } from '../../src/server.js';
import { taskPaths } from '../../src/domain/task-folder.js';
import { makePhotos } from '../../test/e2e/scenario.js';
import { REPO_ROOT, isMain } from '../lib/paths.js';
import { printTable } from '../lib/table.js';

/** A line of the trainer's event stream: on its stdout, or in a task's events file (which adds `time`). */
interface EventLine {
  type: string;
  step?: number;
  time?: string;
  [key: string]: unknown;
}

interface TimedEvent extends EventLine {
  at: number;
}

const PYTHON = path.join(REPO_ROOT, '.venv', 'bin', 'python');

/** Runs the trainer on a spec file and records when each event arrived. */
function runDirect(specFile: string): Promise<TimedEvent[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-m', 'kiln_trainer', 'train', '--spec', specFile], {
      env: { ...process.env, CUDA_VISIBLE_DEVICES: '', KILN_LOG_LEVEL: 'WARNING' },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    const events: TimedEvent[] = [];
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith('{')) events.push({ at: Date.now(), ...(JSON.parse(line) as EventLine) });
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(events) : reject(new Error(`trainer exited with ${code}`))));
  });
}

/** The trainer's own timing of its steps: what supervision could slow down. */
function stepSeconds(events: { type: string; seconds_per_step?: unknown }[]): number {
  return events.filter((e) => e.type === 'step').reduce((sum, e) => sum + Number(e.seconds_per_step), 0);
}

/** Wall seconds from the first to the last step event: the training loop, without load and save. */
function loopSeconds(events: { at: number; type: string }[]): number {
  const steps = events.filter((e) => e.type === 'step');
  return (steps.at(-1)!.at - steps[0].at) / 1000;
}

function checkSteps(events: { type: string; step?: number }[], steps: number, what: string): void {
  const seen = events.filter((e) => e.type === 'step').map((e) => e.step);
  if (seen.length !== steps || seen.at(-1) !== steps) throw new Error(`${what}: expected ${steps} steps, saw ${seen.length}`);
  if (!events.some((e) => e.type === 'completed')) throw new Error(`${what}: no completed event`);
}

export interface TrainerBench {
  steps_per_second: { resolution: number; steps_per_second: number }[];
  supervision: { direct_loop_s: number; worker_loop_s: number; overhead_pct: number; direct_step_s: number; worker_step_s: number };
  post_to_first_step: { total_s: number; model_load_s: number; excluding_model_load_s: number };
}

export async function benchTrainer(opts: { steps?: number } = {}): Promise<TrainerBench> {
  const steps = opts.steps ?? 300;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-trainer-'));
  try {
    // 1. Through a worker: the embedded default, driven over HTTP like a client would.
    const server = await startServer({ ...testConfig(path.join(root, 'data')), port: 0, host: '127.0.0.1', logLevel: 'warn' });
    const headers = { authorization: `Bearer ${await server.runtime.verifier.mint!({ tenantId: 'bench' })}` };
    const form = new FormData();
    (await makePhotos(4, 3)).forEach((png, i) => form.append('file', new Blob([new Uint8Array(png)], { type: 'image/png' }), `p${i}.png`));
    const uploads = (await (await fetch(`${server.url}/api/v1/uploads/`, { method: 'POST', headers, body: form })).json()) as { uploads: { reference: string }[] };
    // A first task builds the tiny model once, so the measured run loads it like any later one.
    const post = async (n: number) => {
      const res = await fetch(`${server.url}/api/v1/training/`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({
          trigger_word: 'BENCH',
          base_model_path: 'builtin:tiny-flux',
          steps: n,
          save_every: 100000,
          sample_every: 100000,
          source_images: uploads.uploads.map((u) => u.reference),
        }),
      });
      return ((await res.json()) as { id: string }).id;
    };
    const waitDone = async (id: string) => {
      for (;;) {
        const t = (await (await fetch(`${server.url}/api/v1/training/${id}`, { headers })).json()) as { status: string; error_message: string };
        if (t.status === 'COMPLETED') return;
        if (t.status === 'FAILED' || t.status === 'CANCELLED') throw new Error(`bench task ${t.status}: ${t.error_message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    await waitDone(await post(2));
    // Worker and direct runs alternate, twice, and the faster of each counts: on a shared
    // 2-core machine a single pair is mostly noise.
    const readEvents = (id: string) =>
      fs
        .readFileSync(taskPaths(path.join(root, 'data', 'tasks', id)).events, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as EventLine & { time: string })
        .map((e) => ({ ...e, at: Date.parse(e.time) }));
    const workerRuns: { postedAt: number; id: string; events: TimedEvent[] }[] = [];
    const directRuns: TimedEvent[][] = [];
    let spec: Record<string, unknown> | null = null;
    const runSpec = (resolution: number, name: string) => {
      const file = path.join(root, `${name}.json`);
      fs.writeFileSync(file, JSON.stringify({ ...spec, resolution: [resolution], work_dir: path.join(root, name) }));
      return file;
    };
    for (let round = 0; round < 2; round++) {
      const postedAt = Date.now();
      const id = await post(steps);
      await waitDone(id);
      const events = readEvents(id);
      checkSteps(events, steps, 'worker run');
      workerRuns.push({ postedAt, id, events });
      spec ??= JSON.parse(fs.readFileSync(taskPaths(path.join(root, 'data', 'tasks', id)).spec, 'utf8'));
      const direct = await runDirect(runSpec(64, `direct-64-${round}`));
      checkSteps(direct, steps, 'direct run at 64');
      directRuns.push(direct);
    }
    await server.stop();
    const at128 = await runDirect(runSpec(128, 'direct-128'));
    checkSteps(at128, steps, 'direct run at 128');
    for (const name of ['direct-64-0', 'direct-128']) {
      if (!fs.existsSync(path.join(root, name, 'output', 'lora.safetensors'))) throw new Error(`${name}: no LoRA written`);
    }

    const best = <T>(runs: T[], seconds: (r: T) => number) => runs.reduce((a, b) => (seconds(b) < seconds(a) ? b : a));
    const direct = best(directRuns, loopSeconds);
    const worker = best(workerRuns, (r) => loopSeconds(r.events));
    const directLoop = loopSeconds(direct);
    const workerLoop = loopSeconds(worker.events);
    const logged = worker.events;
    const postedAt = worker.postedAt;
    const spawned = logged.find((e) => e.type === 'log' && String(e.message).startsWith('[kiln] trainer started'))!.at;
    const started = logged.find((e) => e.type === 'started')!.at;
    const firstStep = logged.find((e) => e.type === 'step')!.at;
    return {
      steps_per_second: [
        { resolution: 64, steps_per_second: round((steps - 1) / directLoop) },
        { resolution: 128, steps_per_second: round((steps - 1) / loopSeconds(at128)) },
      ],
      supervision: {
        direct_loop_s: round(directLoop),
        worker_loop_s: round(workerLoop),
        overhead_pct: round((workerLoop / directLoop - 1) * 100),
        direct_step_s: round(stepSeconds(direct)),
        worker_step_s: round(stepSeconds(logged)),
      },
      post_to_first_step: {
        total_s: round((firstStep - postedAt) / 1000),
        model_load_s: round((started - spawned) / 1000),
        excluding_model_load_s: round((firstStep - postedAt - (started - spawned)) / 1000),
      },
    };
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

if (isMain(import.meta.url)) {
  const result = await benchTrainer();
  printTable('tiny FLUX LoRA on CPU', result.steps_per_second);
  console.log(JSON.stringify(result));
}
