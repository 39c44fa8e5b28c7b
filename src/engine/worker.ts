import os from 'node:os';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics/metrics.js';
import type { TrainingTaskRow } from '../store/db.js';
import type { TaskStore } from '../store/tasks.js';
import { uuidv7 } from '../util/ids.js';
import { isoNow } from '../util/time.js';
import { claimNext, type StageKind } from './claim.js';
import { CANCEL_CHANNEL, WORK_CHANNEL, dropLease, renewLease, rescueExpired } from './leases.js';
import { StageFailure, type Slot, type StageHandlers, type StopReason } from './stages.js';
import type { SlotJob, SlotJobSource } from '../generations/runner.js';

export interface WorkerOptions {
  tasks: TaskStore;
  config: Config;
  handlers: StageHandlers;
  log: Logger;
  metrics?: Metrics;
  /** Training slots: one per GPU, or CPU slots. */
  trainSlots: Slot[];
  preprocessSlots: number;
  /** How often to look for work and for cancels without a notification (ms). */
  pollMs?: number;
  id?: string;
  /** Short jobs (generations) that share the training slots and go before training stages. */
  slotJobs?: SlotJobSource;
}

interface Running {
  task: TrainingTaskRow;
  stage: StageKind;
  slot: Slot;
  abort: AbortController;
  done: Promise<void>;
}

interface RunningJob {
  job: SlotJob;
  abort: AbortController;
  done: Promise<void>;
}

/**
 * Claims stages into free slots, keeps their leases alive, stops them on cancel, and writes
 * their outcome with a compare-and-set on the lease. A stage's slot is freed only after its
 * handler has returned (for training: after the trainer process has exited).
 */
export class Worker {
  readonly id: string;
  private running = new Map<string, Running>();
  private jobs = new Map<string, RunningJob>();
  private freeTrain: Slot[];
  private freePreprocess: Slot[];
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private listener: pg.PoolClient | null = null;
  private ticking = false;
  private tickAgain = false;

  constructor(private readonly opts: WorkerOptions) {
    this.id = opts.id ?? `${os.hostname()}:${process.pid}:${uuidv7().slice(-6)}`;
    this.freeTrain = [...opts.trainSlots];
    this.freePreprocess = Array.from({ length: opts.preprocessSlots }, (_, index) => ({ kind: 'preprocess', index }) as Slot);
  }

  get log(): Logger {
    return this.opts.log;
  }

  async start(): Promise<void> {
    const poll = this.opts.pollMs ?? 500;
    const leaseMs = this.opts.config.leaseSeconds * 1000;
    await this.listen();
    this.timers.push(setInterval(() => void this.tick(), poll));
    this.timers.push(setInterval(() => void this.watchCancels(), poll));
    // Renew at a third of the lease, so two missed beats still leave the lease valid.
    this.timers.push(setInterval(() => void this.heartbeat(), Math.max(200, leaseMs / 3)));
    this.timers.push(setInterval(() => void this.rescue(), Math.max(500, leaseMs / 2)));
    this.log.info({ worker: this.id, train: this.opts.trainSlots, preprocess: this.opts.preprocessSlots }, 'worker started');
    void this.tick();
  }

  /** Stops claiming, asks running stages to stop at a safe point and gives their leases back. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const r of [...this.running.values(), ...this.jobs.values()]) r.abort.abort('shutdown' satisfies StopReason);
    await Promise.allSettled([...this.running.values(), ...this.jobs.values()].map((r) => r.done));
    if (this.listener) {
      this.listener.release();
      this.listener = null;
    }
    this.log.info({ worker: this.id }, 'worker stopped');
  }

  /** Wakes the claim loop now (a new task was created in this process). */
  poke(): void {
    void this.tick();
  }

  runningTaskIds(): string[] {
    return [...this.running.keys()];
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
        while (!this.stopping && this.freePreprocess.length && (await this.claimInto('preprocess', this.freePreprocess)));
        while (!this.stopping && this.freeTrain.length && ((await this.claimSlotJob()) || (await this.claimInto('train', this.freeTrain))));
      } while (this.tickAgain && !this.stopping);
    } catch (err) {
      this.log.error({ err }, 'claim failed');
    } finally {
      this.ticking = false;
    }
  }

  private async claimInto(stage: StageKind, free: Slot[]): Promise<boolean> {
    const { config } = this.opts;
    const task = await claimNext(this.opts.tasks, {
      stage,
      workerId: this.id,
      leaseSeconds: config.leaseSeconds,
      maxRunningPerTenant: config.maxRunningPerTenant,
    });
    if (!task) return false;
    const slot = free.shift()!;
    this.opts.metrics?.queueWait.observe({ stage }, (Date.now() - Date.parse(task.queued_at)) / 1000);
    const abort = new AbortController();
    const entry: Running = { task, stage, slot, abort, done: Promise.resolve() };
    this.running.set(task.id, entry);
    entry.done = this.execute(entry).finally(() => {
      this.running.delete(task.id);
      free.push(slot);
      void this.tick();
    });
    return true;
  }

  private async claimSlotJob(): Promise<boolean> {
    const source = this.opts.slotJobs;
    if (!source) return false;
    const job = await source.claim(this.id, this.opts.config.leaseSeconds);
    if (!job) return false;
    const slot = this.freeTrain.shift()!;
    const abort = new AbortController();
    const entry: RunningJob = { job, abort, done: Promise.resolve() };
    this.jobs.set(job.id, entry);
    entry.done = job
      .run(slot, abort.signal)
      .catch((err) => this.log.error({ err, job: job.id }, 'slot job crashed'))
      .finally(async () => {
        await source.release(job.id, this.id).catch((err) => this.log.error({ err }, 'releasing a slot job failed'));
        this.jobs.delete(job.id);
        this.freeTrain.push(slot);
        void this.tick();
      });
    return true;
  }

  private async execute({ task, stage, slot, abort }: Running): Promise<void> {
    const { tasks, handlers } = this.opts;
    const log = this.log.child({ task: task.id, stage, attempt: task.attempt });
    const started = Date.now();
    const run = await tasks.db
      .insertInto('stage_runs')
      .values({ task_id: task.id, stage, attempt: task.attempt, worker_id: this.id, started_at: isoNow(started) })
      .returning('id')
      .executeTakeFirstOrThrow();
    let outcome = 'completed';
    try {
      log.info('stage started');
      const result = await handlers[stage]({
        task,
        slot,
        signal: abort.signal,
        log,
        update: (set) => tasks.updateRunning(task.id, this.id, set),
      });
      outcome = await this.finish(task, stage, abort.signal, result.set ?? {});
    } catch (err) {
      outcome = await this.finishAfterError(task, stage, abort.signal, err, log);
    } finally {
      // The handler has returned, so its process is gone: only now is the slot free.
      await dropLease(tasks.store, task.id, this.id).catch((err) => log.error({ err }, 'dropping the lease failed'));
      await tasks.db
        .updateTable('stage_runs')
        .set({ ended_at: isoNow(), outcome })
        .where('id', '=', Number(run.id))
        .execute()
        .catch((err) => log.error({ err }, 'closing the stage run failed'));
      this.opts.metrics?.stageDuration.observe({ stage, outcome }, (Date.now() - started) / 1000);
      log.info({ outcome, seconds: (Date.now() - started) / 1000 }, 'stage ended');
    }
  }

  /** The stage returned: finish it, unless it was stopped, in which case the stop decides. */
  private async finish(task: TrainingTaskRow, stage: StageKind, signal: AbortSignal, set: Partial<TrainingTaskRow>): Promise<string> {
    if (signal.aborted) return this.afterStop(task, signal.reason as StopReason);
    const res = await this.opts.tasks.transition(task.id, stage === 'preprocess' ? 'finish_preprocessing' : 'complete', {
      leaseOwner: this.id,
      set: (_before, now) =>
        stage === 'preprocess'
          ? { ...set, preprocessing_completed_at: now, preprocessing_stage: null, attempt: 0, queued_at: now, lease_owner: null, lease_expires_at: null }
          : { ...set, completed_at: now, progress: 100, eta_seconds: null, lease_owner: null, lease_expires_at: null },
    });
    return res.ok ? 'completed' : 'superseded';
  }

  private async finishAfterError(task: TrainingTaskRow, stage: StageKind, signal: AbortSignal, err: unknown, log: Logger): Promise<string> {
    if (signal.aborted) return this.afterStop(task, signal.reason as StopReason);
    const message = err instanceof StageFailure ? err.message : `Internal error in the ${stage} stage: ${(err as Error)?.message ?? err}`;
    if (!(err instanceof StageFailure)) log.error({ err }, 'stage crashed');
    const res = await this.opts.tasks.transition(task.id, 'fail', {
      leaseOwner: this.id,
      set: () => ({ error_message: message, eta_seconds: null, lease_owner: null, lease_expires_at: null }),
    });
    return res.ok ? 'failed' : 'superseded';
  }

  /** On shutdown the stage goes back to the queue for another worker; on cancel nothing moves. */
  private async afterStop(task: TrainingTaskRow, reason: StopReason): Promise<string> {
    if (reason !== 'shutdown') return reason;
    await this.opts.tasks.transition(task.id, 'release', {
      leaseOwner: this.id,
      set: (_b, now) => ({ lease_owner: null, lease_expires_at: null, queued_at: now }),
    });
    return 'released';
  }

  private async heartbeat(): Promise<void> {
    for (const [id, r] of this.jobs) {
      const held = await this.opts.slotJobs!.renew(id, this.id, this.opts.config.leaseSeconds).catch(() => true);
      if (!held && !r.abort.signal.aborted) r.abort.abort('lease_lost' satisfies StopReason);
    }
    for (const r of this.running.values()) {
      try {
        const held = await renewLease(this.opts.tasks.store, r.task.id, this.id, this.opts.config.leaseSeconds);
        if (!held && !r.abort.signal.aborted) {
          this.log.warn({ task: r.task.id }, 'lease lost; stopping the stage');
          r.abort.abort('lease_lost' satisfies StopReason);
        }
      } catch (err) {
        this.log.error({ err, task: r.task.id }, 'lease renewal failed');
      }
    }
  }

  /** The fallback to LISTEN/NOTIFY and the only path on SQLite: poll the running tasks' status. */
  private async watchCancels(): Promise<void> {
    if (this.jobs.size && this.opts.slotJobs) {
      const cancelled = await this.opts.slotJobs.cancelledAmong([...this.jobs.keys()]).catch(() => []);
      for (const id of cancelled) this.jobs.get(id)?.abort.abort('cancelled' satisfies StopReason);
    }
    const ids = [...this.running.keys()];
    if (!ids.length) return;
    try {
      const rows = await this.opts.tasks.db.selectFrom('training_tasks').select(['id', 'status']).where('id', 'in', ids).execute();
      for (const row of rows) if (row.status === 'CANCELLED') this.cancelLocal(row.id);
    } catch (err) {
      this.log.error({ err }, 'cancel poll failed');
    }
  }

  private cancelLocal(taskId: string): void {
    const r = this.running.get(taskId);
    if (r && !r.abort.signal.aborted) {
      this.log.info({ task: taskId }, 'task cancelled; stopping its stage');
      r.abort.abort('cancelled' satisfies StopReason);
    }
  }

  private async rescue(): Promise<void> {
    try {
      await this.opts.slotJobs?.rescue(this.opts.config.maxAttempts);
      const report = await rescueExpired(this.opts.tasks, this.opts.config.maxAttempts);
      for (const t of report.requeued) this.log.warn({ task: t.id, status: t.status }, 'rescued an expired lease');
      for (const t of report.failed) this.log.warn({ task: t.id }, 'failed a task after its last attempt');
      if (report.requeued.length) this.opts.metrics?.leaseLosses.inc({ outcome: 'requeued' }, report.requeued.length);
      if (report.failed.length) this.opts.metrics?.leaseLosses.inc({ outcome: 'failed' }, report.failed.length);
      if (report.requeued.length) void this.tick();
    } catch (err) {
      this.log.error({ err }, 'rescue failed');
    }
  }

  private async listen(): Promise<void> {
    const pool = this.opts.tasks.store.pool;
    if (!pool) return;
    this.listener = await pool.connect();
    this.listener.on('notification', (msg) => {
      if (msg.channel === CANCEL_CHANNEL && msg.payload) this.cancelLocal(msg.payload);
      if (msg.channel === WORK_CHANNEL) void this.tick();
    });
    await this.listener.query(`LISTEN ${CANCEL_CHANNEL}`);
    await this.listener.query(`LISTEN ${WORK_CHANNEL}`);
  }
}
