/**
 * One queue worker's claim loop, in its own process with its own connection, as separate
 * worker processes share one store in production. Started by queue.ts; it opens the runtime
 * (so the claim's status listeners run as they do in a worker), says `ready`, and on `go`
 * claims until the queue is empty, then reports what it claimed and how long each claim took.
 *
 * Env: KILN_DATA_DIR, KILN_DATABASE_URL, BENCH_PG_SCHEMA, BENCH_WORKER_ID, BENCH_DEADLINE_MS.
 */
import { claimNext } from '../../src/engine/claim.js';
import { preprocessKind } from '../../src/engine/kinds.js';
import { loadConfig } from '../../src/config.js';
import { openRuntime } from '../../src/runtime.js';

const workerId = process.env.BENCH_WORKER_ID ?? `bench-${process.pid}`;
const deadlineMs = Number(process.env.BENCH_DEADLINE_MS ?? 60_000);
/** Upper bound on claims by one process: the bench queues 10k, so this is never the stop. */
const MAX_CLAIMS = 1_000_000;

const config = { ...loadConfig(process.env), logLevel: 'warn' };
const runtime = await openRuntime(config, { pgSchema: process.env.BENCH_PG_SCHEMA || undefined });
/** The preprocessing queue; its handler is never called, since this loop only claims. */
const preprocess = preprocessKind(runtime.taskStore, () => Promise.reject(new Error('the claim bench runs nothing')));

async function claimAll(): Promise<{ ids: string[]; latencies: number[]; errors: number; timedOut: boolean }> {
  const ids: string[] = [];
  const latencies: number[] = [];
  let errors = 0;
  const stopAt = performance.now() + deadlineMs;
  while (ids.length < MAX_CLAIMS) {
    if (performance.now() > stopAt) return { ids, latencies, errors, timedOut: true };
    const started = performance.now();
    let row;
    try {
      // No tenant cap: leases are never released here, so a cap would stop the queue at 4.
      row = await claimNext(preprocess, { workerId, leaseSeconds: 600, maxRunningPerTenant: 0 });
    } catch {
      errors++; // e.g. SQLITE_BUSY past busy_timeout: a real worker would retry on its next poll
      continue;
    }
    if (!row) break;
    latencies.push(performance.now() - started);
    ids.push(row.id);
  }
  return { ids, latencies, errors, timedOut: false };
}

process.on('message', (m: { type?: string }) => {
  if (m?.type !== 'go') return;
  void claimAll().then(async (result) => {
    await runtime.close();
    process.send!({ type: 'done', ...result }, () => process.exit(0));
  });
});
process.send!({ type: 'ready' });
