import type pg from 'pg';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics/metrics.js';
import type { Store } from '../store/db.js';
import type { OutageLog } from '../store/outage.js';
import type { AnyJobKind } from './job-kind.js';
import type { LeaseKeeper } from './lease-keeper.js';
import { CANCEL_CHANNEL, WORK_CHANNEL } from './notifications.js';
import { rescueExpired } from './rescuer.js';

/**
 * The advisory lock whose holder is the one rescuer of a Postgres fleet ('kiln' in ASCII),
 * keyed by schema too: advisory locks are database-wide, and two Kilns in two schemas of one
 * database are two fleets, each needing its own rescuer.
 */
const RESCUER_LOCK = 0x6b696c6e;

/** Reconnecting the LISTEN connection: the first try at once, then doubling up to the cap. */
const RELISTEN_FIRST_MS = 250;
const RELISTEN_MAX_MS = 5000;

export interface MaintenanceOptions {
  store: Store;
  kinds: AnyJobKind[];
  keeper: LeaseKeeper;
  log: Logger;
  outage: OutageLog;
  metrics?: Metrics;
  maxAttempts: number;
  leaseSeconds: number;
  pollMs: number;
  /** Runnable work may have appeared: a notification, or rows the rescuer put back. */
  onWork(): void;
}

/**
 * What a worker does besides running jobs: hears cancels and new work (LISTEN on Postgres,
 * polling as the fallback and on SQLite), and rescues expired leases. On Postgres one worker
 * at a time is the rescuer: the holder of a session advisory lock on its LISTEN connection,
 * as River elects its leader; when that worker dies its connection closes and the next
 * round elects another. A lost LISTEN connection (a database restart, a failover) is
 * reconnected with backoff; meanwhile the polls carry on and nobody here rescues, since the
 * lock went with the session. On SQLite every worker rescues, since writes are serialised anyway.
 */
export class Maintenance {
  private timers: NodeJS.Timeout[] = [];
  private listener: pg.PoolClient | null = null;
  private relisten: NodeJS.Timeout | null = null;
  private relistenMs = RELISTEN_FIRST_MS;
  private deaf = false;
  private leader = false;
  private stopped = false;

  constructor(private readonly opts: MaintenanceOptions) {}

  /** Whether this worker is its fleet's rescuer now (always, on SQLite). */
  get rescuer(): boolean {
    return this.opts.store.pool === null || (this.listener !== null && this.leader);
  }

  /** Whether notifications reach this worker now (Postgres only). */
  get listening(): boolean {
    return this.listener !== null;
  }

  async start(): Promise<void> {
    await this.listen();
    this.timers.push(setInterval(() => void this.watchCancels(), this.opts.pollMs));
    this.timers.push(setInterval(() => void this.rescue(), Math.max(500, (this.opts.leaseSeconds * 1000) / 2)));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.relisten) clearTimeout(this.relisten);
    // Releasing the connection ends the session, and with it the advisory lock.
    this.listener?.release(true);
    this.listener = null;
    this.leader = false;
  }

  private async listen(): Promise<void> {
    const pool = this.opts.store.pool;
    if (!pool || this.stopped) return;
    let client: pg.PoolClient | null = null;
    try {
      client = await pool.connect();
      const connection = client;
      connection.on('error', () => this.lost(connection));
      connection.on('end', () => this.lost(connection));
      connection.on('notification', (msg) => {
        if (msg.channel === CANCEL_CHANNEL && msg.payload) this.opts.keeper.stop(msg.payload, 'cancelled');
        if (msg.channel === WORK_CHANNEL) this.opts.onWork();
      });
      await connection.query(`LISTEN ${CANCEL_CHANNEL}`);
      await connection.query(`LISTEN ${WORK_CHANNEL}`);
      if (this.stopped) return connection.release(true);
      this.listener = connection;
      this.relistenMs = RELISTEN_FIRST_MS;
      if (this.deaf) {
        this.deaf = false;
        this.opts.log.info('listening for notifications again');
        // Work notified while we were deaf is still waiting: look now rather than at the next poll.
        this.opts.onWork();
      }
    } catch (err) {
      client?.release(true);
      if (!this.opts.outage.failed(err, 'listen')) this.opts.log.error({ err }, 'LISTEN failed');
      this.scheduleRelisten();
    }
  }

  /** The LISTEN connection died: stop claiming leadership and reconnect with backoff. */
  private lost(connection: pg.PoolClient): void {
    if (this.listener !== connection) return;
    this.listener = null;
    this.leader = false;
    this.deaf = true;
    this.opts.log.warn('lost the LISTEN connection; polling until it is back');
    connection.release(true);
    this.scheduleRelisten();
  }

  private scheduleRelisten(): void {
    if (this.stopped || this.relisten) return;
    const delay = this.relistenMs;
    this.relistenMs = Math.min(RELISTEN_MAX_MS, this.relistenMs * 2);
    this.relisten = setTimeout(() => {
      this.relisten = null;
      void this.listen();
    }, delay);
  }

  /** The fallback to LISTEN/NOTIFY and the only path on SQLite: poll the held rows' status. */
  private async watchCancels(): Promise<void> {
    for (const rows of new Set(this.opts.kinds.map((k) => k.rows))) {
      const ids = this.opts.keeper.idsOn(rows.table);
      if (!ids.length) continue;
      try {
        const cancelled = await rows.db.selectFrom(rows.table).select('id').where('id', 'in', ids).where('status', '=', 'CANCELLED').execute();
        for (const { id } of cancelled) {
          this.opts.log.info({ job: id }, 'cancelled; stopping its job');
          this.opts.keeper.stop(id, 'cancelled');
        }
      } catch (err) {
        if (!this.opts.outage.failed(err, 'cancel poll')) this.opts.log.error({ err }, 'cancel poll failed');
      }
    }
  }

  private async elected(): Promise<boolean> {
    if (!this.opts.store.pool) return true;
    if (!this.listener) return false;
    if (!this.leader) {
      const res = await this.listener.query<{ ok: boolean }>('select pg_try_advisory_lock($1, hashtext(current_schema())) as ok', [RESCUER_LOCK]);
      this.leader = res.rows[0].ok;
      if (this.leader) this.opts.log.info('this worker is the rescuer');
    }
    return this.leader;
  }

  private async rescue(): Promise<void> {
    try {
      if (!(await this.elected())) return;
      const report = await rescueExpired(this.opts.kinds, this.opts.maxAttempts);
      for (const row of report.requeued) this.opts.log.warn({ job: row.id, status: row.status }, 'rescued an expired lease');
      for (const row of report.failed) this.opts.log.warn({ job: row.id }, 'failed a job after its last attempt');
      if (report.requeued.length) this.opts.metrics?.leaseLosses.inc({ outcome: 'requeued' }, report.requeued.length);
      if (report.failed.length) this.opts.metrics?.leaseLosses.inc({ outcome: 'failed' }, report.failed.length);
      if (report.requeued.length) this.opts.onWork();
    } catch (err) {
      if (!this.opts.outage.failed(err, 'rescue')) this.opts.log.error({ err }, 'rescue failed');
    }
  }
}
