import os from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Store } from '../store/db.js';
import type { LeasedRow } from '../store/lifecycle-store.js';
import { closeRun, openRun } from '../store/stage-runs.js';
import { uuidv7 } from '../util/ids.js';
import { claimNext } from './claim.js';
import { JobFailure, type AnyJobKind, type Pool, type Slot, type StopReason } from './job-kind.js';
import { LeaseKeeper, type Lease } from './lease-keeper.js';
import { Maintenance } from './maintenance.js';

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
  id?: string;
}

/**
 * The claim loop: claims jobs into free slots, runs their handlers, and writes each outcome
 * with a compare-and-set on the lease. A job's slot is freed only after its handler has
 * returned (for training: after the trainer process has exited). Leases are the
 * LeaseKeeper's; cancels and rescue are Maintenance's.
 */
export class Worker {
  readonly id: string;
  private readonly keeper: LeaseKeeper;
  private readonly maintenance: Maintenance;
  private readonly free: Record<Pool, Slot[]>;
  private running = new Set<Promise<void>>();
  private poll: NodeJS.Timeout | null = null;
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
    this.keeper = new LeaseKeeper(opts.store, { workerId: this.id, leaseSeconds, log: opts.log });
    this.maintenance = new Maintenance({
      store: opts.store,
      kinds: opts.kinds,
      keeper: this.keeper,
      log: opts.log,
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
      do {
        this.tickAgain = false;
        for (const pool of ['preprocess', 'accelerator'] as const) {
          while (!this.stopping && this.free[pool].length && (await this.claimInto(pool)));
        }
      } while (this.tickAgain && !this.stopping);
    } catch (err) {
      this.log.error({ err }, 'claim failed');
    } finally {
      this.ticking = false;
    }
  }

  /** Claims one job of the first kind of the pool that has one runnable; false when none has. */
  private async claimInto(pool: Pool): Promise<boolean> {
    const { config } = this.opts;
    for (const kind of this.opts.kinds.filter((k) => k.pool === pool)) {
      // The kinds hold rows of different types; every one is at least a LeasedRow.
      const row = (await claimNext(kind, { workerId: this.id, leaseSeconds: config.leaseSeconds, maxRunningPerTenant: config.maxRunningPerTenant })) as LeasedRow | undefined;
      if (!row) continue;
      const slot = this.free[pool].shift()!;
      this.opts.metrics?.queueWait.observe({ stage: kind.name }, (Date.now() - Date.parse(kind.queuedAt(row))) / 1000);
      const lease = this.keeper.hold(kind.rows.table, row.id);
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
    const runId = await openRun(store, { jobId: row.id, kind: kind.name, attempt: row.attempt, workerId: this.id, startedAt: started });
    let outcome = 'completed';
    try {
      log.info('job started');
      const result = await kind.handler({
        row,
        slot,
        signal: lease.signal,
        log,
        update: (set) => kind.rows.updateRunning(row.id, this.id, set),
      });
      outcome = await this.finish(kind, row, lease.signal, result.set ?? {});
    } catch (err) {
      outcome = await this.finishAfterError(kind, row, lease.signal, err, log);
    } finally {
      // The handler has returned, so its process is gone: only now is the slot free.
      await this.keeper.release(lease).catch((err) => log.error({ err }, 'dropping the lease failed'));
      await closeRun(store, runId, outcome).catch((err) => log.error({ err }, 'closing the run failed'));
      this.opts.metrics?.stageDuration.observe({ stage: kind.name, outcome }, (Date.now() - started) / 1000);
      log.info({ outcome, seconds: (Date.now() - started) / 1000 }, 'job ended');
    }
  }

  /** The job returned: finish it, unless it was stopped, in which case the stop decides. */
  private async finish(kind: AnyJobKind, row: LeasedRow, signal: AbortSignal, set: object): Promise<string> {
    if (signal.aborted) return this.afterStop(kind, row, signal.reason as StopReason);
    const res = await kind.rows.transition(row.id, kind.finish.transition, { leaseOwner: this.id, set: (_before, now) => kind.finish.set(set, now) });
    return res.ok ? 'completed' : 'superseded';
  }

  private async finishAfterError(kind: AnyJobKind, row: LeasedRow, signal: AbortSignal, err: unknown, log: Logger): Promise<string> {
    if (signal.aborted) return this.afterStop(kind, row, signal.reason as StopReason);
    const message = err instanceof JobFailure ? err.message : `Internal error in the ${kind.name} job: ${(err as Error)?.message ?? String(err)}`;
    if (!(err instanceof JobFailure)) log.error({ err }, 'job crashed');
    const res = await kind.rows.transition(row.id, 'fail', { leaseOwner: this.id, set: (_before, now) => kind.failed(message, now) });
    return res.ok ? 'failed' : 'superseded';
  }

  /** On shutdown the job goes back to the queue for another worker; on cancel nothing moves. */
  private async afterStop(kind: AnyJobKind, row: LeasedRow, reason: StopReason): Promise<string> {
    if (reason !== 'shutdown') return reason;
    await kind.rows.transition(row.id, 'release', { leaseOwner: this.id, set: (_before, now) => kind.released(now) });
    return 'released';
  }
}
