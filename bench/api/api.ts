/**
 * API throughput: Kiln against the FastAPI + SQLAlchemy baseline, same endpoints, same table,
 * same 100k rows, same HS256 JWT check, on SQLite and on Postgres.
 *
 * Each service runs in its own process; autocannon runs in this one. All three processes
 * share the machine's cores, and the conditions are the same for both services.
 *
 * Run directly: node --import tsx bench/api/api.ts [--quick] [--dialect sqlite|postgres]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createVerifier } from '../../src/auth/jwt.js';
import { loadConfig } from '../../src/config.js';
import { openStore, type Dialect, type Store } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrations.js';
import { mergeLoads, runLoad, type LoadResult, type LoadSpec } from '../lib/load.js';
import { formatMachine } from '../lib/machine.js';
import { isMain } from '../lib/paths.js';
import { BENCH_PG_URL, createBenchSchema } from '../lib/pg.js';
import { BENCH_TENANT, countTasks, historyStatus, seedTasks } from '../lib/seed.js';
import { round, sleep } from '../lib/stats.js';
import { printTable } from '../lib/table.js';
import { startBaseline, startKiln, type RunningService, type ServiceName, type StoreTarget } from './services.js';

export interface ApiRow {
  bench: 'api';
  dialect: Dialect;
  service: ServiceName;
  endpoint: string;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
}

export interface ApiBenchOptions {
  /** Tasks in the store before any request. */
  rows?: number;
  /** Measured seconds per endpoint and service. */
  durationS?: number;
  /** Unmeasured seconds before each measurement (JIT, pools, caches). */
  warmupS?: number;
  connections?: number;
  dialects?: Dialect[];
  services?: ServiceName[];
  log?: (line: string) => void;
}

const DEFAULTS = { rows: 100_000, durationS: 8, warmupS: 2, connections: 16 };
/** Measured slices per endpoint and service, taken in turn (see benchDialect). */
const SLICES = 4;
const JWT_SECRET = 'bench-secret-bench-secret-bench-secret!';
/** GET /{id} cycles through this many distinct ids so it is not one hot row. */
const ID_SAMPLE = 1000;
const CREATE_BODY = JSON.stringify({ trigger_word: 'SNKR' });

interface Endpoint {
  name: string;
  method: 'GET' | 'POST';
  paths: string[];
  body?: string;
  status: number;
}

function endpoints(ids: string[]): Endpoint[] {
  const sample = Array.from({ length: Math.min(ID_SAMPLE, ids.length) }, () => ids[Math.floor(Math.random() * ids.length)]);
  return [
    { name: 'GET /training/{id}', method: 'GET', paths: sample.map((id) => `/api/v1/training/${id}`), status: 200 },
    { name: 'GET /training/?limit=100', method: 'GET', paths: ['/api/v1/training/?limit=100'], status: 200 },
    { name: 'POST /training/', method: 'POST', paths: ['/api/v1/training/'], body: CREATE_BODY, status: 201 },
  ];
}

interface PreparedStore {
  target: StoreTarget;
  store: Store;
  ids: string[];
  cleanup(): Promise<void>;
}

/** A fresh store of the dialect with `rows` tasks of one tenant, migrated by Kiln's migrations. */
async function prepareStore(dialect: Dialect, rows: number): Promise<PreparedStore> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-bench-api-'));
  const schema = dialect === 'postgres' ? await createBenchSchema() : null;
  const store = openStore({ databaseUrl: schema ? BENCH_PG_URL : '', dataDir, pgSchema: schema?.name });
  const cleanup = async () => {
    await store.close();
    await schema?.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await migrate(store.db, store.dialect);
    const ids = await seedTasks(store.db, rows, { dataDir, status: historyStatus });
    if (dialect === 'postgres') await store.pool!.query('analyze training_tasks');
    return {
      target: { dataDir, jwtSecret: JWT_SECRET, pgUrl: schema ? BENCH_PG_URL : '', pgSchema: schema?.name, pgUrlWithSchema: schema?.url },
      store,
      ids,
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** The token both services check: Kiln's own HS256 minting with the shared secret. */
async function mintToken(dataDir: string): Promise<string> {
  const verifier = createVerifier(loadConfig({ KILN_DATA_DIR: dataDir, KILN_JWT_SECRET: JWT_SECRET }));
  return verifier.mint!({ tenantId: BENCH_TENANT, ttlSeconds: 3600 });
}

function keysOf(value: unknown): string {
  const obj: unknown = Array.isArray(value) ? value[0] : value;
  return Object.keys(obj ?? {})
    .sort()
    .join(',');
}

/** One request per endpoint to each service: same status, same keys, else the comparison is void. */
async function checkShapes(services: RunningService[], eps: Endpoint[], headers: Record<string, string>): Promise<void> {
  for (const ep of eps) {
    const shapes = new Map<string, string>();
    for (const svc of services) {
      const res = await fetch(svc.url + ep.paths[0], { method: ep.method, headers, body: ep.body });
      const body: unknown = await res.json();
      if (res.status !== ep.status) throw new Error(`${svc.name} ${ep.name}: status ${res.status}, expected ${ep.status}: ${JSON.stringify(body).slice(0, 300)}`);
      if (Array.isArray(body) && body.length !== 100) throw new Error(`${svc.name} ${ep.name}: ${body.length} items, expected 100`);
      shapes.set(svc.name, keysOf(body));
    }
    const distinct = new Set(shapes.values());
    if (distinct.size > 1) throw new Error(`${ep.name}: response keys differ: ${JSON.stringify(Object.fromEntries(shapes))}`);
  }
}

async function benchDialect(dialect: Dialect, o: Required<Omit<ApiBenchOptions, 'dialects' | 'log'>>, log: (s: string) => void): Promise<ApiRow[]> {
  const seedStart = performance.now();
  const prepared = await prepareStore(dialect, o.rows);
  log(`[api ${dialect}] seeded ${o.rows} tasks in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);
  const services: RunningService[] = [];
  const rows: ApiRow[] = [];
  try {
    for (const name of o.services) services.push(name === 'kiln' ? await startKiln(prepared.target) : await startBaseline(prepared.target));
    const token = await mintToken(prepared.target.dataDir);
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const eps = endpoints(prepared.ids);
    await checkShapes(services, eps, headers);
    log(`[api ${dialect}] response shapes match across ${services.map((s) => s.name).join(', ')}`);

    // Endpoint-major order: both services see the table in the same state for each endpoint.
    // The measured time is cut into slices taken in turn, ABBA (Kiln, baseline, baseline, Kiln,
    // ...): the machine's other load, which on a shared VM drifts by tens of percent within a
    // minute, then falls on both services alike instead of on whichever ran second.
    for (const ep of eps) {
      const spec = (svc: RunningService, durationS: number): LoadSpec => ({
        url: svc.url,
        method: ep.method,
        paths: ep.paths,
        headers,
        body: ep.body,
        connections: o.connections,
        durationS,
      });
      if (o.warmupS > 0) for (const svc of services) await runLoad(spec(svc, o.warmupS));
      const slices = new Map<RunningService, LoadResult[]>(services.map((svc) => [svc, []]));
      const sliceS = Math.max(1, Math.round(o.durationS / SLICES));
      for (let i = 0; i < SLICES; i++) {
        for (const svc of i % 2 === 0 ? services : [...services].reverse()) {
          // The previous slice's last requests may still be committing; count only after they have.
          const before = ep.method === 'POST' ? await settledCount(prepared.store) : 0;
          const r = await runLoad(spec(svc, sliceS));
          if (ep.method === 'POST') await verifyCreated(prepared.store, before, r.ok, o.connections, `${svc.name} ${dialect}`, log);
          slices.get(svc)!.push(r);
        }
      }
      for (const svc of services) {
        const runs = slices.get(svc)!;
        const r = mergeLoads(runs);
        log(
          `[api ${dialect}] ${svc.name} ${ep.name}: ${r.rps.toFixed(0)} req/s (slices ${runs.map((s) => s.rps.toFixed(0)).join(', ')}), ` +
            `p50 ${r.p50_ms.toFixed(2)} ms, p99 ${r.p99_ms.toFixed(2)} ms, codes ${JSON.stringify(r.statusCodes)}`,
        );
        rows.push({ bench: 'api', dialect, service: svc.name, endpoint: ep.name, rps: round(r.rps, 0), p50_ms: round(r.p50_ms, 2), p99_ms: round(r.p99_ms, 2), errors: r.errors });
      }
    }
  } finally {
    for (const svc of services) await svc.stop();
    await prepared.cleanup();
  }
  return rows;
}

/**
 * The task count once requests still in flight have committed: it has not moved for 500 ms.
 * On a loaded machine a slow service's last requests take longer than any fixed wait.
 */
async function settledCount(store: Store): Promise<number> {
  let last = await countTasks(store.db);
  for (let i = 0; i < 20; i++) {
    await sleep(500);
    const now = await countTasks(store.db);
    if (now === last) return now;
    last = now;
  }
  return last;
}

/**
 * The rows a POST run really created must match the 2xx it counted. Requests still in flight
 * when autocannon stops may commit without being counted, so up to one per connection more.
 */
async function verifyCreated(store: Store, before: number, ok: number, connections: number, what: string, log: (s: string) => void): Promise<void> {
  const created = (await settledCount(store)) - before;
  if (created < ok || created > ok + connections) {
    throw new Error(`${what}: POST reported ${ok} created but the table grew by ${created}`);
  }
  log(`[api] ${what}: POST verified, ${created} rows created for ${ok} counted 2xx`);
}

export async function benchApi(opts: ApiBenchOptions = {}): Promise<ApiRow[]> {
  const o = { ...DEFAULTS, services: ['kiln', 'baseline'] as ServiceName[], ...opts };
  const log = opts.log ?? ((line: string) => console.error(line));
  const rows: ApiRow[] = [];
  for (const dialect of opts.dialects ?? (['sqlite', 'postgres'] as Dialect[])) {
    rows.push(...(await benchDialect(dialect, o, log)));
  }
  return rows;
}

export interface ApiVerdict {
  dialect: Dialect;
  endpoint: string;
  /** Kiln's requests/s over the baseline's. */
  rps_ratio: number;
  kiln_p99_ms: number;
  baseline_p99_ms: number;
  /** The stated goal: at least 3x the throughput at a lower p99. */
  goal_met: boolean;
}

/** Kiln against the baseline per dialect and endpoint, from benchApi's rows. */
export function apiVerdicts(rows: ApiRow[]): ApiVerdict[] {
  const out: ApiVerdict[] = [];
  for (const k of rows.filter((r) => r.service === 'kiln')) {
    const b = rows.find((r) => r.service === 'baseline' && r.dialect === k.dialect && r.endpoint === k.endpoint);
    if (!b) continue;
    const ratio = k.rps / b.rps;
    out.push({
      dialect: k.dialect,
      endpoint: k.endpoint,
      rps_ratio: round(ratio, 2),
      kiln_p99_ms: k.p99_ms,
      baseline_p99_ms: b.p99_ms,
      goal_met: ratio >= 3 && k.p99_ms < b.p99_ms,
    });
  }
  return out;
}

if (isMain(import.meta.url)) {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const dialectArg = args[args.indexOf('--dialect') + 1];
  const dialects = args.includes('--dialect') ? [dialectArg as Dialect] : undefined;
  const started = performance.now();
  const rows = await benchApi(quick ? { rows: 5000, durationS: 2, warmupS: 1, dialects } : { dialects });
  console.log(formatMachine());
  console.log(
    `load: autocannon in the bench process, ${quick ? 2 : DEFAULTS.durationS} s per endpoint and service in ${SLICES} slices taken in turn, after ${quick ? 1 : DEFAULTS.warmupS} s warm-up, ` +
      `${DEFAULTS.connections} connections; each service one process (uvicorn: 1 worker); all on the same cores`,
  );
  printTable('API throughput', rows);
  printTable('Kiln vs baseline (goal: >= 3x requests/s at a lower p99)', apiVerdicts(rows));
  console.log(`\ntook ${((performance.now() - started) / 1000).toFixed(0)} s`);
}
