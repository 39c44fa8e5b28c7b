import os from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Store } from '../store/db.js';
import type { Executor, LeasedRow } from '../store/lifecycle-store.js';
import { OutageLog } from '../store/outage.js';
import { closeRun, openRun } from '../store/stage-runs.js';
import { describeShortage, diskShortage, isDiskFull } from '../util/disk-space.js';
import { uuidv7 } from '../util/ids.js';
import { claimNext } from './claim.js';
import { JobFailure, type AnyJobKind, type JobResult, type Pool, type Slot, type StopReason } from './job-kind.js';
import { dropLease, LeaseKeeper, type Lease } from './lease-keeper.js';
import { Maintenance } from './maintenance.js';
import { RunningWrites } from './running-writes.js';

/** Once the worker is stopping, how long an outcome write keeps retrying a database that is down. */
const STOPPING_WRITE_PATIENCE_MS = 10_000;
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 2000;
const DISK_WARN_EVERY_MS = 60_000;

export interface WorkerOptions {
  store: Store;
  config: Config;
  /** What this worker runs; within a pool, kinds are claimed in this order. */
  kinds: AnyJobKind[];
  log: Logger;
  metrics?: Metrics;
  /** Accelerator slots (one per GPU, or CPU slots) and the number of preprocessing slots. */
  slots: { accelerator: Slot[]; preprocess: number };
  /** How often to look for work and for cancels without a notification (ms). */
  pollMs?: number;
  /** How long a stopped job may take to reach its safe point and exit; leases are given up this early when they cannot be renewed. */
  stopGraceMs?: number;
  id?: string;
}

/**
 * The claim loop: claims jobs into free slots, runs their handlers, and writes each outcome
 * with a compare-and-set on the lease. A job's slot is freed only after its handler has
 * returned (for training: after the trainer process has exited). Leases are the
 * LeaseKeeper's; cancels and rescue are Maintenance's. While the database is unavailable the
 * jobs keep running: progress is coalesced, outcomes are retried until they land.
 */
export class Worker {
  readonly id: string;
  private readonly keeper: LeaseKeeper;
  private readonly maintenance: Maintenance;
  private readonly outage: OutageLog;
  private readonly free: Record<Pool, Slot[]>;
  private running = new Set<Promise<void>>();
  private poll: NodeJS.Timeout | null = null;
  /** When the worker last said it claims nothing for want of disk space; null while there is enough. */
  private diskWarnedAt: number | null = null;
  private stopping = false;
  private ticking = false;
  private tickAgain = false;

  constructor(private readonly opts: WorkerOptions) {
    this.id = opts.id ?? `${os.hostname()}:${process.pid}:${uuidv7().slice(-6)}`;
    this.free = {
      accelerator: [...opts.slots.accelerator],
      preprocess: Array.from({ length: opts.slots.preprocess }, (_, index) => ({ kind: 'preprocess', index })),
    };
    const { leaseSeconds, maxAttempts } = opts.config;
    this.outage = new OutageLog(opts.log);
    this.keeper = new LeaseKeeper(opts.store, { workerId: this.id, leaseSeconds, log: opts.log, outage: this.outage, stopGraceMs: opts.stopGraceMs ?? 10_000 });
    this.maintenance = new Maintenance({
      store: opts.store,
      kinds: opts.kinds,
      keeper: this.keeper,
      log: opts.log,
      outage: this.outage,
      metrics: opts.metrics,
      maxAttempts,
      leaseSeconds,
      pollMs: opts.pollMs ?? 500,
      onWork: () => this.poke(),
    });
  }

  get log(): Logger {
    return this.opts.log;
  }

  get isRescuer(): boolean {
    return this.maintenance.rescuer;
  }

  /** Whether the database answered this worker's last calls. */
  get databaseUp(): boolean {
    return !this.outage.down;
  }

  async start(): Promise<void> {
    await this.maintenance.start();
    this.keeper.start();
    this.poll = setInterval(() => this.poke(), this.opts.pollMs ?? 500);
    this.log.info({ worker: this.id, accelerator: this.opts.slots.accelerator, preprocess: this.opts.slots.preprocess }, 'worker started');
    this.poke();
  }

  /** Stops claiming, asks running jobs to stop at a safe point and gives their leases back. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.poll) clearInterval(this.poll);
    this.keeper.stopAll('shutdown');
    await Promise.allSettled([...this.running]);
    this.keeper.stopRenewing();
    this.maintenance.stop();
    this.log.info({ worker: this.id }, 'worker stopped');
  }

  /** Looks for work now: a row became runnable (created in this process, notified, or rescued). */
  poke(): void {
    void this.tick();
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = true;
    try {
      if (this.diskShort()) return;
      do {
        this.tickAgain = false;
        for (const pool of ['preprocess', 'accelerator'] as const) {
          while (!this.stopping && this.free[pool].length && (await this.claimInto(pool)));
        }
      } while (this.tickAgain && !this.stopping);
    } catch (err) {
      if (!this.outage.failed(err, 'claim')) this.log.error({ err }, 'claim failed');
    } finally {
      this.ticking = false;
    }
  }

  /**
   * True while the data dir's disk is under KILN_MIN_FREE_DISK_MB: a stage started then would
   * fail when it writes (a checkpoint, a dataset), so none is claimed; running ones go on. Said
   * in the log when it starts, every minute while it lasts, and when it ends.
   */
  private diskShort(): boolean {
    const shortage = diskShortage(this.opts.config.dataDir, this.opts.config.minFreeDiskMb);
    if (!shortage) {
      if (this.diskWarnedAt !== null) this.log.info({ worker: this.id }, 'disk space is back above KILN_MIN_FREE_DISK_MB: claiming work again');
      this.diskWarnedAt = null;
      return false;
    }
    if (this.diskWarnedAt === null || Date.now() - this.diskWarnedAt >= DISK_WARN_EVERY_MS) {
      this.log.warn({ worker: this.id, free_bytes: shortage.freeBytes }, `claiming no work: ${describeShortage(shortage)}`);
      this.diskWarnedAt = Date.now();
    }
    return true;
  }

  /** Claims one job of the first kind of the pool that has one runnable; false when none has. */
  private async claimInto(pool: Pool): Promise<boolean> {
    const { config } = this.opts;
    for (const kind of this.opts.kinds.filter((k) => k.pool === pool)) {
      // The kinds hold rows of different types; every one is at least a LeasedRow.
      const row = (await claimNext(kind, { workerId: this.id, leaseSeconds: config.leaseSeconds, maxRunningPerTenant: config.maxRunningPerTenant })) as LeasedRow | undefined;
      this.outage.ok();
      if (!row) continue;
      const slot = this.free[pool].shift()!;
      this.opts.metrics?.queueWait.observe({ stage: kind.name }, (Date.now() - Date.parse(kind.queuedAt(row))) / 1000);
      const lease = this.keeper.hold(kind.rows.table, row);
      const done: Promise<void> = this.execute(kind, row, slot, lease).finally(() => {
        this.running.delete(done);
        this.free[pool].push(slot);
        this.poke();
      });
      this.running.add(done);
      return true;
    }
    return false;
  }

  private async execute(kind: AnyJobKind, row: LeasedRow, slot: Slot, lease: Lease): Promise<void> {
    const { store } = this.opts;
    const log = this.log.child({ job: row.id, kind: kind.name, attempt: row.attempt });
    const started = Date.now();
    const run = { jobId: row.id, kind: kind.name, attempt: row.attempt, workerId: this.id, startedAt: started, tenantId: kind.rows.tenantOf(row), slot: slot.kind };
    const runId = await openRun(store, run).catch((err: unknown) => {
      // The history row is bookkeeping: the job runs without it rather than not at all, and it is written whole at the end.
      if (!this.outage.failed(err, 'stage run')) log.error({ err }, 'opening the run failed');
      return null;
    });
    const writes = new RunningWrites((set) => kind.rows.updateRunning(row.id, this.id, set), this.outage);
    let result: JobResult<object> = {};
    let error: unknown = undefined;
    log.info('job started');
    try {
      result = (await kind.handler({ row, slot, signal: lease.signal, log, update: (set) => writes.update(set) })) as JobResult<object>;
    } catch (err) {
      error = err ?? new Error('unknown error');
    }
    // The handler has returned, so its process is gone: only now is the slot free.
    const ended = Date.now();
    const stop = lease.signal.aborted ? (lease.signal.reason as StopReason) : null;
    this.keeper.settle(lease);
    const pending = writes.takePending();
    const closeRunAs = (outcome: string) => (trx: Executor) => (runId === null ? Promise.resolve() : closeRun(trx, runId, outcome, ended));
    const written = (await this.durably('job outcome', log, () => this.writeOutcome(kind, row, { stop, result, error, pending }, closeRunAs, log)).catch(async (err: unknown) => {
      // A write that fails for a reason other than the database being down is a bug of ours: say so on the row.
      log.error({ err }, 'writing the outcome failed');
      return this.durably('job outcome', log, () => this.writeOutcome(kind, row, { stop, result, error: err, pending }, closeRunAs, log));
    })) ?? { outcome: 'unwritten', landed: false };
    const { outcome } = written;
    await this.keeper.forget(lease);
    // A transition that landed cleared the lease with the status, and the row may already be
    // this worker's again (its next stage claimed): the lease is dropped only when none landed.
    if (!written.landed) {
      await this.durably('lease drop', log, () => dropLease(store, lease, this.id)).catch((err) => log.error({ err }, 'dropping the lease failed'));
    }
    // A transition that landed closed the run in its own transaction. A run that could not be
    // opened (the database was away at its start) is recorded now, so that usage counts it.
    if (runId !== null && !written.landed) {
      await this.durably('stage run', log, () => closeRun(store.db, runId, outcome, ended)).catch((err) => log.error({ err }, 'closing the run failed'));
    } else if (runId === null) {
      await this.durably('stage run', log, () => openRun(store, { ...run, ended: { at: ended, outcome } })).catch((err) => log.error({ err }, 'recording the run failed'));
    }
    this.opts.metrics?.stageDuration.observe({ stage: kind.name, outcome }, (ended - started) / 1000);
    log.info({ outcome, seconds: (ended - started) / 1000 }, 'job ended');
  }

  /**
   * Runs a write until it lands, waiting out a database that is unavailable; other errors are
   * thrown. Once the worker is stopping it gives up after a while: undefined, and the lease,
   * left to expire, hands the job to the rescuer.
   */
  private async durably<T>(what: string, log: Logger, write: () => Promise<T>): Promise<T | undefined> {
    let delay = RETRY_FIRST_MS;
    let giveUpAt = Infinity;
    for (;;) {
      try {
        const value = await write();
        this.outage.ok();
        return value;
      } catch (err) {
        if (!this.outage.failed(err, what)) throw err;
        if (this.stopping) giveUpAt = Math.min(giveUpAt, Date.now() + STOPPING_WRITE_PATIENCE_MS);
        if (Date.now() > giveUpAt) {
          log.warn({ what }, 'gave up waiting for the database; the lease will expire and the rescuer will requeue the job');
          return undefined;
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(RETRY_MAX_MS, delay * 2);
      }
    }
  }

  /**
   * Writes how the job ended, with any progress that never reached the database. A stopped
   * job's stop decides; otherwise it completed or failed. Every write names this worker's
   * lease, so a job rescued meanwhile is left to its new holder ('superseded'). `landed`: a
   * transition was written, and with it the lease cleared and the run closed (`closeRunAs`).
   */
  private async writeOutcome(
    kind: AnyJobKind,
    row: LeasedRow,
    end: { stop: StopReason | null; result: JobResult<object>; error: unknown; pending: object },
    closeRunAs: (outcome: string) => (trx: Executor) => Promise<void>,
    log: Logger,
  ): Promise<{ outcome: string; landed: boolean }> {
    const leaseOwner = this.id;
    if (end.stop === 'cancelled') return { outcome: 'cancelled', landed: false };
    if (end.stop) {
      // Shutdown, or a lease that could not be renewed: back to the queue, to resume from its checkpoint.
      const outcome = end.stop === 'shutdown' ? 'released' : 'lease_lost';
      const set = (_before: LeasedRow, now: string) => ({ ...end.pending, ...kind.released(now) });
      const res = await kind.rows.transition(row.id, 'release', { leaseOwner, set, alongside: closeRunAs(outcome) });
      return { outcome: res.ok ? outcome : 'lease_lost', landed: res.ok };
    }
    if (end.error === undefined) {
      const set = (_before: LeasedRow, now: string) => kind.finish.set({ ...end.pending, ...end.result.set }, now);
      const res = await kind.rows.transition(row.id, kind.finish.transition, { leaseOwner, set, alongside: closeRunAs('completed') });
      return { outcome: res.ok ? 'completed' : 'superseded', landed: res.ok };
    }
    const err = end.error;
    const message =
      err instanceof JobFailure
        ? err.message
        : isDiskFull(err)
          ? `The data dir's disk is full (${(err as Error).message}); free space on it, then retry`
          : `Internal error in the ${kind.name} job: ${err instanceof Error ? err.message : JSON.stringify(err)}`;
    if (!(err instanceof JobFailure)) log.error({ err }, 'job crashed');
    const set = (_before: LeasedRow, now: string) => ({ ...end.pending, ...kind.failed(message, now) });
    const res = await kind.rows.transition(row.id, 'fail', { leaseOwner, set, alongside: closeRunAs('failed') });
    return { outcome: res.ok ? 'failed' : 'superseded', landed: res.ok };
  }
}
