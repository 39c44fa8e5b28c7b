/**
 * Queue claim throughput: 10,000 PENDING tasks claimed for preprocessing by 1, 2 and 4
 * concurrent workers, each a separate process with its own connection (the realistic case
 * for SQLite, where one process serializes on its one connection), on SQLite and Postgres.
 * Every task must be claimed exactly once before a number is reported.
 *
 * Run directly: node --import tsx bench/queue/queue.ts [--quick]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore, type Dialect, type Store } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrations.js';
import { forkTs, isMessage, nextMessage, stopChild } from '../lib/child.js';
import { formatMachine } from '../lib/machine.js';
import { isMain, REPO_ROOT } from '../lib/paths.js';
import { BENCH_PG_URL, createBenchSchema } from '../lib/pg.js';
import { countTasks, seedTasks } from '../lib/seed.js';
import { percentile, round } from '../lib/stats.js';
import { printTable } from '../lib/table.js';

export interface QueueRow {
  bench: 'queue';
  dialect: Dialect;
  workers: number;
  claims: number;
  claims_per_s: number;
  p50_ms: number;
  p99_ms: number;
  seconds: number;
}

export interface QueueBenchOptions {
  tasks?: number;
  workers?: number[];
  dialects?: Dialect[];
  /** A claimer gives up after this long, so a stuck queue cannot hang the bench. */
  deadlineMs?: number;
  log?: (line: string) => void;
}

const CLAIMER = path.join(REPO_ROOT, 'bench/queue/claimer.ts');
const DEFAULTS = { tasks: 10_000, workers: [1, 2, 4], deadlineMs: 120_000 };

interface Done {
  type: 'done';
  ids: string[];
  latencies: number[];
  errors: number;
  timedOut: boolean;
}
const isReady = isMessage<{ type: 'ready' }>('ready');
const isDone = isMessage<Done>('done');

/** One measurement: a fresh store, `tasks` queued, `workers` claimers racing for them. */
async function runOnce(dialect: Dialect, workers: number, o: typeof DEFAULTS, log: (s: string) => void): Promise<QueueRow> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-queue-'));
  const schema = dialect === 'postgres' ? await createBenchSchema('kiln_bench_q') : null;
  const store = openStore({ databaseUrl: schema ? BENCH_PG_URL : '', dataDir, pgSchema: schema?.name });
  const children = [];
  try {
    await migrate(store.db, store.dialect);
    await seedTasks(store.db, o.tasks, { dataDir });
    if (schema) await store.pool!.query('analyze training_tasks');

    for (let i = 0; i < workers; i++) {
      children.push(
        forkTs(CLAIMER, {
          KILN_DATA_DIR: dataDir,
          KILN_DATABASE_URL: schema ? BENCH_PG_URL : '',
          BENCH_PG_SCHEMA: schema?.name ?? '',
          BENCH_WORKER_ID: `bench-w${i}`,
          BENCH_DEADLINE_MS: String(o.deadlineMs),
        }),
      );
    }
    await Promise.all(children.map((c, i) => nextMessage(c, isReady, 30_000, `claimer ${i}`)));
    // Listen for `done` before `go`, so a fast claimer cannot answer before we listen.
    const results = Promise.all(children.map((c, i) => nextMessage(c, isDone, o.deadlineMs + 30_000, `claimer ${i}`)));
    const started = performance.now();
    for (const c of children) c.send({ type: 'go' });
    const done = await results;
    const seconds = (performance.now() - started) / 1000;

    await verifyExactlyOnce(store, done, o.tasks, `${dialect} x${workers}`);
    const latencies = done.flatMap((d) => d.latencies);
    const errors = done.reduce((n, d) => n + d.errors, 0);
    const perWorker = done.map((d) => d.ids.length).join('/');
    log(`[queue ${dialect} x${workers}] ${o.tasks} claimed once each in ${seconds.toFixed(2)} s (per worker ${perWorker}, claim errors retried: ${errors})`);
    return {
      bench: 'queue',
      dialect,
      workers,
      claims: latencies.length,
      claims_per_s: round(latencies.length / seconds, 0),
      p50_ms: round(percentile(latencies, 50), 2),
      p99_ms: round(percentile(latencies, 99), 2),
      seconds: round(seconds, 2),
    };
  } finally {
    for (const c of children) await stopChild(c);
    await store.close();
    await schema?.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Every queued task claimed by exactly one worker, and none left waiting. */
async function verifyExactlyOnce(store: Store, done: Done[], tasks: number, what: string): Promise<void> {
  if (done.some((d) => d.timedOut)) throw new Error(`${what}: a claimer hit its deadline`);
  const all = done.flatMap((d) => d.ids);
  const distinct = new Set(all).size;
  const pending = await countTasks(store.db, { status: 'PENDING' });
  const claimed = await countTasks(store.db, { status: 'PREPROCESSING' });
  if (all.length !== tasks || distinct !== tasks || pending !== 0 || claimed !== tasks) {
    throw new Error(`${what}: ${all.length} claims, ${distinct} distinct ids, ${pending} still PENDING, ${claimed} PREPROCESSING; expected ${tasks} each and 0 PENDING`);
  }
}

export async function benchQueue(opts: QueueBenchOptions = {}): Promise<QueueRow[]> {
  const o = { tasks: opts.tasks ?? DEFAULTS.tasks, workers: opts.workers ?? DEFAULTS.workers, deadlineMs: opts.deadlineMs ?? DEFAULTS.deadlineMs };
  const log = opts.log ?? ((line: string) => console.error(line));
  const rows: QueueRow[] = [];
  for (const dialect of opts.dialects ?? (['sqlite', 'postgres'] as Dialect[])) {
    for (const workers of o.workers) rows.push(await runOnce(dialect, workers, o, log));
  }
  return rows;
}

if (isMain(import.meta.url)) {
  const quick = process.argv.includes('--quick');
  const started = performance.now();
  const rows = await benchQueue(quick ? { tasks: 1000 } : {});
  console.log(formatMachine());
  console.log('claimers: separate node processes, one connection each, sharing the cores with the database; no tenant cap');
  printTable('Queue claim (preprocess stage)', rows);
  console.log(`\ntook ${((performance.now() - started) / 1000).toFixed(0)} s`);
}
