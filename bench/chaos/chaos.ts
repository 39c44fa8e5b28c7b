/**
 * Chaos run: a Postgres fleet under fire, then checks that nothing was lost or done twice.
 *
 * What it does, on this machine, with real processes:
 *  - starts a throwaway Postgres cluster of its own (initdb on a free port, trust auth, run as
 *    the `postgres` user), so that it can really restart a server without touching the shared
 *    one on 5432 that other people's tests use;
 *  - starts one `kiln serve --no-worker` and 3 `kiln worker`s (one CPU training slot and one
 *    preprocessing slot each) sharing a temp data dir and that database;
 *  - uploads a few generated photos through the API and posts 40 tiny tasks
 *    (`builtin:tiny-flux`, 100 steps, a checkpoint every 20);
 *  - while they run: SIGKILLs a worker 10 times, mostly one running a trainer, and starts a
 *    replacement, so the fleet keeps 3 (the kills are spread over the run by the tasks
 *    finished, at random moments at least 8–20 s apart); stops Postgres (fast shutdown: every
 *    session terminated) and starts it again, twice: for 3 s, which a 20 s lease rides out, and
 *    for 15 s, longer than a lease may go unrenewed (10 s: the lease less the trainer's stop
 *    grace), so that trainers must stop at a checkpoint and resume; and cancels 4 tasks
 *    through the API at different stages.
 *
 * What it checks at the end (exit status 1 when one fails):
 *  - every task is COMPLETED at its last step, or CANCELLED where the script's cancel was
 *    accepted;
 *  - no stage ever ran twice at once: per task and stage, `stage_runs` rows never overlap, and
 *    in each task's logs/events.jsonl every trainer start falls inside its own run, the steps
 *    run on without another trainer's in between, and a trainer orphaned by a killed worker
 *    was gone before the next one of its task started;
 *  - no trainer is left: no kiln_trainer process of this run alive after the fleet stopped,
 *    every logs/trainer.pid dead;
 *  - no Kiln process crashed: every process the script did not kill ran to the end and exited
 *    0 on SIGTERM, no crash in any log; during each outage the API answered /healthz 200,
 *    /readyz and a task read 503, and /readyz was 200 again once Postgres was back.
 *
 * It prints the machine, the run (kills, restarts and how long Postgres was down, wall time,
 * attempts and rescues, cancels) and the checks; docs/benchmarks.md ("Chaos") records a run.
 * Not part of `make test` or `make bench`: it owns the machine's CPUs for minutes (a stage's
 * time is mostly the trainer's start, which stretches with the machine's load).
 *
 *   make bench-chaos
 *   node --import tsx bench/chaos/chaos.ts [--tasks 40] [--workers 3] [--steps 100] [--kills 10]
 *       [--cancels 4] [--pauses 3,15] [--lease 20] [--seed 1] [--timeout 2400] [--keep] [--json FILE]
 *
 * Needs PostgreSQL 15's server binaries (KILN_CHAOS_PG_BIN, default /usr/lib/postgresql/15/bin)
 * and, when run as root, a `postgres` user to run them as. --keep leaves the data dir (every
 * process's log, each task's folder) in place; it is also kept when a check fails.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { api, makePhotos } from '../../test/e2e/scenario.js';
import { mintToken } from '../../test/helpers/processes.js';
import { formatMachine } from '../lib/machine.js';
import { sleep } from '../lib/stats.js';
import { formatTable } from '../lib/table.js';
import { checkFinalStatuses, checkNoCrash, checkNoOrphans, checkRunsNeverOverlap, checkTrainerStarts, type Check, type Orphan, type RunRow, type TaskRow } from './checks.js';
import { ChaosFleet, type Member } from './fleet.js';
import { freePort } from '../../test/helpers/free-port.js';
import { PostgresCluster } from './postgres-cluster.js';
import { trainerProcesses } from './trainer-processes.js';

const { values: args } = parseArgs({
  options: {
    tasks: { type: 'string', default: '40' },
    workers: { type: 'string', default: '3' },
    steps: { type: 'string', default: '100' },
    kills: { type: 'string', default: '10' },
    cancels: { type: 'string', default: '4' },
    pauses: { type: 'string', default: '3,15' },
    lease: { type: 'string', default: '20' },
    seed: { type: 'string', default: '1' },
    timeout: { type: 'string', default: '2400' },
    keep: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const TASKS = Number(args.tasks);
const WORKERS = Number(args.workers);
const STEPS = Number(args.steps);
const MAX_KILLS = Number(args.kills);
const CANCELS = Number(args.cancels);
const PAUSES = args.pauses.split(',').filter(Boolean).map(Number);
const LEASE_SECONDS = Number(args.lease);
const TIMEOUT_MS = Number(args.timeout) * 1000;
const TERMINAL = ['COMPLETED', 'FAILED', 'CANCELLED'];

/** A small seeded generator (mulberry32): the same seed draws the same plan of victims and delays. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const random = seeded(Number(args.seed));
const between = (lo: number, hi: number) => lo + random() * (hi - lo);
const pick = <T>(items: T[]): T | undefined => items[Math.floor(random() * items.length)];

const t0 = Date.now();
const since = (at = Date.now()) => Math.round((at - t0) / 100) / 10;
const say = (line: string) => console.error(`[chaos +${since()}s] ${line}`);

interface Kill {
  at_s: number;
  worker: string;
  held: string;
  trainers: number;
  replaced_by: string;
}

interface Restart {
  at_s: number;
  pause_s: number;
  down_s: number;
  healthz: number | string;
  readyz: number | string;
  get_task: string;
  ready_again_s: number | string;
  api_alive: boolean;
}

interface Cancel {
  at_s: number;
  task: string;
  was: string;
  answer: string;
}

interface Snapshot {
  id: string;
  status: string;
  attempt: number;
  current_step: number;
  lease_owner: string | null;
}

/** The run itself; true when a check failed. The fleet is stopped on every way out. */
async function main(cluster: PostgresCluster, dataDir: string, fleets: ChaosFleet[]): Promise<boolean> {
  // --- setup -------------------------------------------------------------------------------

  const fleet = await ChaosFleet.start({
    dataDir,
    databaseUrl: cluster.url,
    port: await freePort(),
    workers: WORKERS,
    env: {
      KILN_LEASE_SECONDS: String(LEASE_SECONDS),
      KILN_MAX_RUNNING_PER_TENANT: '0',
      // A random schedule may hit one task several times; what is checked here is that nothing
      // is lost or doubled, not the give-up rule (tested on its own).
      KILN_MAX_ATTEMPTS: '10',
    },
  });
  fleets.push(fleet);
  say(`fleet up: API ${fleet.baseUrl}, ${WORKERS} workers, Postgres ${cluster.url}, data ${dataDir}`);

  // The script's own view of the queue; it rides the outages like the fleet must (idle errors ignored, failed reads skipped).
  const db = new pg.Pool({ connectionString: cluster.url, max: 2, connectionTimeoutMillis: 2000, query_timeout: 5000 });
  db.on('error', () => undefined);
  async function snapshot(): Promise<Snapshot[] | null> {
    try {
      return (await db.query<Snapshot>('select id, status, attempt, current_step, lease_owner from training_tasks')).rows;
    } catch {
      return null;
    }
  }

  const target = { baseUrl: fleet.baseUrl, token: await mintToken('chaos'), dataDir };
  const client = api(target);
  const uploads: string[][] = [];
  for (let i = 0; i < 4; i++) uploads.push(await client.upload(await makePhotos(3, 100 + i)));
  const ids: string[] = [];
  for (let i = 0; i < TASKS; i++) {
    const res = await client.json<TrainingTask>('POST', '/api/v1/training/', {
      trigger_word: `CHAOS${i}`,
      base_model_path: 'builtin:tiny-flux',
      steps: STEPS,
      save_every: Math.max(1, Math.floor(STEPS / 5)),
      sample_every: 100_000,
      source_images: uploads[i % uploads.length],
    });
    if (res.status !== 201) throw new Error(`POST answered ${res.status}: ${JSON.stringify(res.body)}`);
    ids.push(res.body.id);
  }
  const postedAt = Date.now();
  say(`${TASKS} tasks posted`);

  // --- chaos -------------------------------------------------------------------------------

  const kills: Kill[] = [];
  const restarts: Restart[] = [];
  const cancels: Cancel[] = [];
  const accepted = new Set<string>();
  const orphans: Orphan[] = [];

  // Orphans are watched on their own clock, so a 15 s outage does not blur when they went.
  const orphanWatch = setInterval(() => {
    const alive = new Set(trainerProcesses(dataDir).map((t) => t.pid));
    for (const o of orphans) if (o.goneAt === null && !alive.has(o.pid)) o.goneAt = Date.now();
  }, 100);

  async function status(url: string, timeoutMs = 10_000): Promise<number | string> {
    try {
      return (await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })).status;
    } catch (err) {
      return (err as Error).name;
    }
  }

  async function killOne(rows: Snapshot[]): Promise<void> {
    const live = fleet.workers;
    const training = rows.filter((r) => r.status === 'TRAINING' && r.lease_owner);
    const busy = training.map((r) => fleet.byWorkerId(r.lease_owner!)).filter((m): m is Member => m !== undefined && m.exit === null);
    // Mostly a worker with a trainer (loading its model or stepping); now and then any, which may be preprocessing or idle.
    const victim = (random() < 0.75 ? pick(busy) : undefined) ?? pick(live);
    if (!victim) return;
    const held = rows.filter((r) => r.lease_owner && fleet.byWorkerId(r.lease_owner) === victim).map((r) => `${r.id.slice(-8)} ${r.status}@${r.current_step}`);
    const trainers = trainerProcesses(dataDir).filter((t) => t.ppid === victim.pid);
    await fleet.kill(victim);
    for (const t of trainers) orphans.push({ pid: t.pid, taskId: t.taskId, killedAt: victim.killedAt!, goneAt: null });
    say(`SIGKILL ${victim.name} (pid ${victim.pid}) holding [${held.join(', ')}], ${trainers.length} trainer(s) orphaned`);
    const killedAt = victim.killedAt!;
    await sleep(between(500, 3000));
    const replacement = fleet.startWorker();
    kills.push({ at_s: since(killedAt), worker: victim.name, held: held.join(', ') || '(idle)', trainers: trainers.length, replaced_by: replacement.name });
  }

  async function restartPostgres(pause: number): Promise<void> {
    say(`stopping Postgres for ${pause} s`);
    const stopAt = Date.now();
    await cluster.stop();
    // What a client and a load balancer see meanwhile: alive, not ready, a database route refused quickly.
    const healthz = await status(`${fleet.baseUrl}/healthz`);
    const readyz = await status(`${fleet.baseUrl}/readyz`);
    const asked = Date.now();
    const get = await client.json('GET', `/api/v1/training/${ids[0]}`).then(
      (r) => `${r.status} in ${((Date.now() - asked) / 1000).toFixed(1)} s`,
      (err: Error) => err.message,
    );
    await sleep(Math.max(0, stopAt + pause * 1000 - Date.now()));
    await cluster.start();
    const upAt = Date.now();
    let readyAgain: number | string = 'never (60 s)';
    for (const until = upAt + 60_000; Date.now() < until; await sleep(200)) {
      if ((await status(`${fleet.baseUrl}/readyz`, 2000)) === 200) {
        readyAgain = Math.round((Date.now() - upAt) / 100) / 10;
        break;
      }
    }
    const restart = {
      at_s: since(stopAt),
      pause_s: pause,
      down_s: Math.round((upAt - stopAt) / 100) / 10,
      healthz,
      readyz,
      get_task: get,
      ready_again_s: readyAgain,
      api_alive: fleet.api.exit === null,
    };
    restarts.push(restart);
    say(`Postgres back after ${restart.down_s} s; /readyz 200 again ${readyAgain} s later`);
  }

  async function cancelOne(rows: Snapshot[], want: string[]): Promise<void> {
    const open = rows.filter((r) => !TERMINAL.includes(r.status) && !accepted.has(r.id));
    const row = pick(open.filter((r) => want.includes(r.status) && (r.status !== 'TRAINING' || r.current_step > 0))) ?? pick(open);
    if (!row) return;
    const res = await client.json<TrainingTask>('POST', `/api/v1/training/${row.id}/cancel`);
    if (res.status === 200 && res.body.status === 'CANCELLED') accepted.add(row.id);
    const was = `${row.status}${row.status === 'TRAINING' ? `@${row.current_step}` : ''}`;
    cancels.push({ at_s: since(), task: row.id.slice(-8), was, answer: `${res.status} ${res.body.status}` });
    say(`cancel ${row.id} (was ${was}): ${res.status}`);
  }

  // When each disruption happens, as a share of the tasks finished: spread over the run.
  const restartAt = PAUSES.map((_, i) => Math.ceil(TASKS * (0.25 + (0.35 * i) / Math.max(1, PAUSES.length - 1))));
  // Kills paced by progress rather than by the clock: on a loaded machine a stage takes minutes, and kills every few seconds would stop all progress.
  const killAt = Array.from({ length: MAX_KILLS }, (_, i) => Math.floor((TASKS * 0.85 * i) / MAX_KILLS));
  const cancelPlan: string[][] = [['PENDING', 'QUEUED'], ['TRAINING'], ['PREPROCESSING', 'QUEUED'], ['TRAINING']];
  const cancelAt = Array.from({ length: CANCELS }, (_, i) => Math.ceil((TASKS * (i + 1)) / (CANCELS + 2)));
  let nextKillAt: number | null = null;
  let waitedForTraining = 0;
  let stuck: Snapshot[] = [];
  let doneAt = 0;
  // Outages at least 30 s apart, so that each one's effects are seen on their own.
  let lastRestartEnd = 0;
  const reported = new Set<Member>();

  for (;;) {
    const rows = await snapshot();
    if (Date.now() - postedAt > TIMEOUT_MS) {
      stuck = (rows ?? []).filter((r) => !TERMINAL.includes(r.status));
      say(`timed out with ${stuck.length} task(s) unfinished`);
      break;
    }
    if (!rows) {
      await sleep(500);
      continue;
    }
    const finished = rows.filter((r) => TERMINAL.includes(r.status)).length;
    if (finished === TASKS) {
      doneAt = Date.now();
      break;
    }
    for (const m of fleet.members.filter((m) => m.exit && m.killedAt === null && !reported.has(m))) {
      reported.add(m);
      say(`${m.name} (pid ${m.pid}) exited by itself: code ${m.exit!.code}, signal ${m.exit!.signal}; see ${m.process.logFile}`);
    }
    const trainingNow = rows.some((r) => r.status === 'TRAINING' && r.current_step > 0);
    if (nextKillAt === null && trainingNow) nextKillAt = Date.now() + between(3_000, 10_000);
    if (restarts.length < PAUSES.length && finished >= restartAt[restarts.length] && Date.now() >= lastRestartEnd + 30_000) {
      // Into a stage in flight if one comes within 20 s: that is the case worth testing.
      if (trainingNow || waitedForTraining++ > 80) {
        await restartPostgres(PAUSES[restarts.length]);
        waitedForTraining = 0;
        lastRestartEnd = Date.now();
      }
    } else if (cancels.length < CANCELS && finished >= cancelAt[cancels.length]) {
      await cancelOne(rows, cancelPlan[cancels.length % cancelPlan.length]);
    } else if (nextKillAt !== null && kills.length < MAX_KILLS && finished >= killAt[kills.length] && Date.now() >= nextKillAt) {
      await killOne(rows);
      nextKillAt = Date.now() + between(8_000, 20_000);
    }
    await sleep(250);
  }

  // --- the end -----------------------------------------------------------------------------

  const wallSeconds = Math.round(((doneAt || Date.now()) - postedAt) / 1000);
  say(stuck.length ? 'stopping the fleet (timed out)' : `all ${TASKS} tasks finished in ${wallSeconds} s; stopping the fleet`);
  const stoppedAt = Date.now();
  await fleet.stop();
  clearInterval(orphanWatch);
  for (const o of orphans) if (o.goneAt === null && !trainerProcesses(dataDir).some((t) => t.pid === o.pid)) o.goneAt = Date.now();

  const tasks = (await db.query<TaskRow>('select id, status, attempt, error_message, current_step, steps, local_model_path from training_tasks where id = any($1)', [ids])).rows;
  const runs = (await db.query<RunRow>('select task_id, stage, attempt, worker_id, started_at, ended_at, outcome from stage_runs order by id')).rows;
  await db.end();

  const apiThrough: Check = {
    check: 'API up through the restarts',
    ok:
      restarts.length === PAUSES.length &&
      restarts.every((r) => r.api_alive && r.healthz === 200 && r.readyz === 503 && r.get_task.startsWith('503 ') && typeof r.ready_again_s === 'number'),
    detail: restarts.map((r) => `healthz ${r.healthz}, readyz ${r.readyz}, GET ${r.get_task}, ready ${r.ready_again_s} s after`).join('; ') || 'no restart happened',
  };
  const checks: Check[] = [
    checkFinalStatuses(tasks, accepted),
    checkRunsNeverOverlap(runs),
    checkTrainerStarts(dataDir, tasks, runs, orphans),
    checkNoOrphans(dataDir, tasks),
    checkNoCrash(fleet.members, stoppedAt),
    apiThrough,
  ];
  if (stuck.length)
    checks.unshift({
      check: 'every task finished',
      ok: false,
      detail: stuck.map((r) => `${r.id} ${r.status}@${r.current_step} attempt ${r.attempt} lease ${r.lease_owner}`).join('; '),
    });

  const byOutcome = new Map<string, number>();
  for (const r of runs) byOutcome.set(`${r.stage} ${r.outcome}`, (byOutcome.get(`${r.stage} ${r.outcome}`) ?? 0) + 1);
  const stages = new Set(runs.map((r) => `${r.task_id} ${r.stage}`)).size;
  const orphanLife = orphans.filter((o) => o.goneAt !== null).map((o) => (o.goneAt! - o.killedAt) / 1000);
  const counts = (status: string) => tasks.filter((t) => t.status === status).length;
  const summary = [
    { measure: 'tasks', value: `${TASKS}: ${counts('COMPLETED')} COMPLETED, ${counts('CANCELLED')} CANCELLED, ${counts('FAILED')} FAILED` },
    { measure: 'wall time, first POST to last task finished', value: `${wallSeconds} s` },
    { measure: 'workers SIGKILLed (each replaced)', value: `${kills.length}, ${orphans.length} trainer(s) orphaned` },
    {
      measure: 'orphaned trainers: lifetime after the kill',
      value: orphanLife.length
        ? `max ${Math.max(...orphanLife).toFixed(1)} s; ${orphans.filter((o) => o.goneAt !== null && o.nextStartedAt !== undefined && o.nextStartedAt < o.goneAt).length} still alive when the next trainer of their task started`
        : '-',
    },
    { measure: 'Postgres restarts (down)', value: `${restarts.length} (${restarts.map((r) => `${r.down_s} s`).join(', ')})` },
    { measure: 'stages rescued (lease expired, requeued)', value: String(runs.filter((r) => r.outcome === 'lease_expired').length) },
    { measure: 'stages stopped at a checkpoint (lease unrenewable)', value: String(runs.filter((r) => r.outcome === 'lease_lost').length) },
    { measure: 'cancels by the script', value: `${cancels.length} (${accepted.size} accepted)` },
    { measure: 'train attempts beyond the first, sum(attempt-1)', value: String(tasks.reduce((n, t) => n + Math.max(0, t.attempt - 1), 0)) },
    { measure: 'stage runs (retried)', value: `${runs.length} for ${stages} stages (${runs.length - stages})` },
    { measure: 'runs by stage and outcome', value: [...byOutcome].map(([k, n]) => `${k} ${n}`).join(', ') },
  ];

  const orphanRows = orphans.map((o) => ({
    task: o.taskId.slice(-8),
    pid: o.pid,
    killed_at_s: since(o.killedAt),
    phase: o.phase ?? '?',
    lived_s: o.goneAt === null ? 'alive' : Math.round((o.goneAt - o.killedAt) / 100) / 10,
    next_trainer_after_s: o.nextStartedAt === undefined ? '-' : Math.round((o.nextStartedAt - o.killedAt) / 100) / 10,
  }));
  const report = {
    machine: formatMachine(),
    command: `node --import tsx bench/chaos/chaos.ts ${process.argv.slice(2).join(' ')}`.trim(),
    summary,
    kills,
    restarts,
    cancels,
    checks,
  };
  console.log(report.machine);
  console.log(`\n${formatTable(summary)}`);
  console.log(`\nkills\n${formatTable(kills)}`);
  console.log(`\norphaned trainers (killed worker's child; lived = until it exited by itself)\n${formatTable(orphanRows)}`);
  console.log(`\nPostgres restarts\n${formatTable(restarts)}`);
  console.log(`\ncancels\n${formatTable(cancels)}`);
  console.log(`\nchecks\n${formatTable(checks.map((c) => ({ check: c.check, result: c.ok ? 'ok' : 'FAILED', detail: c.detail })))}`);
  if (args.json) fs.writeFileSync(args.json, JSON.stringify(report, null, 2));
  return checks.some((c) => !c.ok);
}

say('creating a throwaway Postgres cluster');
const cluster = await PostgresCluster.create();
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-chaos-'));
const fleets: ChaosFleet[] = [];
let failed: boolean;
try {
  failed = await main(cluster, dataDir, fleets);
} finally {
  // After a crash of the script itself: no process of the run may outlive it.
  for (const f of fleets) await f.stop();
  await cluster.remove();
}
if (args.keep || failed) console.log(`\ndata dir kept: ${dataDir} (api.log, worker-N.log, tasks/<id>/logs)`);
else fs.rmSync(dataDir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
