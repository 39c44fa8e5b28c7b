import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { LeasedTable } from '../store/lifecycle-store.js';
import type { Store } from '../store/db.js';
import { isoIn } from '../util/time.js';
import type { OutageLog } from '../store/outage.js';
import type { StopReason } from './job-kind.js';

/** Both leased tables share the lease columns; Kysely cannot type a table chosen at run time. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the table is chosen at run time
const leased = (store: Store) => store.db as unknown as Kysely<any>;

/**
 * Extends a lease: the new expiry, or null when the caller no longer holds it (rescued, or never
 * did). Matched on the owner alone, so that a renewal whose answer an outage swallowed after it
 * landed does not make the next one miss.
 */
export async function renewLease(store: Store, table: LeasedTable, id: string, workerId: string, leaseSeconds: number): Promise<string | null> {
  const next = isoIn(leaseSeconds * 1000);
  const res = await leased(store).updateTable(table).set({ lease_expires_at: next }).where('id', '=', id).where('lease_owner', '=', workerId).executeTakeFirst();
  return Number(res.numUpdatedRows) === 1 ? next : null;
}

/**
 * Drops a lease the caller holds, whatever the status: the slot is free once this returns.
 * Compared on the expiry too, because the owner alone is not this lease: once a row has moved
 * on (retried after a cancel, say), this same worker may hold a newer lease on it, which must
 * stay. A drop that misses leaves the lease to expire, and the rescuer clears it.
 */
export async function dropLease(store: Store, lease: Lease, workerId: string): Promise<void> {
  await leased(store)
    .updateTable(lease.table)
    .set({ lease_owner: null, lease_expires_at: null })
    .where('id', '=', lease.id)
    .where('lease_owner', '=', workerId)
    .where('lease_expires_at', '=', lease.expiresAt)
    .execute();
}

/** A lease this worker holds on one row, and the signal that stops the job running under it. */
export interface Lease {
  id: string;
  table: LeasedTable;
  signal: AbortSignal;
  /** The expiry this worker last wrote (by the claim, then by each renewal): which lease of the row is this one. */
  expiresAt: string;
}

interface Held {
  lease: Lease;
  abort: AbortController;
  /** When the last renewal that landed was sent: the lease is good until this + its length. */
  renewedAt: number;
  /** The job has returned and its outcome is being written: renew, but there is nothing left to stop. */
  settled: boolean;
}

export interface LeaseKeeperOptions {
  workerId: string;
  leaseSeconds: number;
  log: Logger;
  outage: OutageLog;
  /** How long a stopped job may take to reach its safe point and exit (the trainer's SIGTERM grace). */
  stopGraceMs: number;
}

/**
 * Keeps this worker's leases alive and owns their stop signals, as bullmq's lock manager does
 * for its jobs. Each lease is renewed every quarter of its length, and every second while
 * renewals fail, so a database outage shorter than the lease leaves the jobs running. A
 * renewal that finds the lease gone (rescued by another worker) stops the job with
 * `lease_lost`; so does a lease about to expire unrenewed, early enough for the job to stop
 * at its safe point before the lease runs out, so that a rescuer elsewhere can never start a
 * second copy while this one still runs. Nothing else in the worker renews or drops a lease.
 */
export class LeaseKeeper {
  private held = new Map<string, Held>();
  private timer: NodeJS.Timeout | null = null;
  /** The renewal round in flight, if any: one at a time, and forget() waits for it. */
  private round: Promise<void> | null = null;
  private failing = false;
  private lastRound = 0;

  constructor(
    private readonly store: Store,
    private readonly opts: LeaseKeeperOptions,
  ) {}

  private get leaseMs(): number {
    return this.opts.leaseSeconds * 1000;
  }

  /** A lease not renewed by this long after its last renewal has its job stopped. */
  get stopAfterMs(): number {
    // With a lease too short for the whole grace, stop at half of it and count on the job stopping faster.
    return this.leaseMs - Math.min(this.opts.stopGraceMs, this.leaseMs / 2);
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), Math.max(100, Math.min(1000, this.leaseMs / 8)));
  }

  stopRenewing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Takes over a lease the claim just wrote. */
  hold(table: LeasedTable, row: { id: string; lease_expires_at: string | null }): Lease {
    const abort = new AbortController();
    const lease = { id: row.id, table, signal: abort.signal, expiresAt: row.lease_expires_at! };
    this.held.set(row.id, { lease, abort, renewedAt: Date.now(), settled: false });
    return lease;
  }

  /** Ids of the held leases on one table. */
  idsOn(table: LeasedTable): string[] {
    return [...this.held.values()].filter((h) => h.lease.table === table).map((h) => h.lease.id);
  }

  get size(): number {
    return this.held.size;
  }

  /** Asks the job under a lease to stop; the first reason given is the one it sees. */
  stop(id: string, reason: StopReason): void {
    const held = this.held.get(id);
    if (held && !held.abort.signal.aborted) held.abort.abort(reason);
  }

  stopAll(reason: StopReason): void {
    for (const id of this.held.keys()) this.stop(id, reason);
  }

  /**
   * The job under the lease has returned. Its lease is still renewed while the outcome is
   * written (which an outage can make take a while), so that a finished job is not rescued
   * and run again meanwhile.
   */
  settle(lease: Lease): void {
    const held = this.held.get(lease.id);
    if (held?.lease === lease) held.settled = true;
  }

  /**
   * Stops renewing the lease (and not a newer lease this worker holds on the same row). Resolves
   * once no renewal is in flight, so that `lease.expiresAt` is the last one written: the caller
   * then drops the lease by it.
   */
  async forget(lease: Lease): Promise<void> {
    if (this.held.get(lease.id)?.lease === lease) this.held.delete(lease.id);
    await this.round;
  }

  private async tick(): Promise<void> {
    if (this.round) return;
    const due = this.failing || Date.now() - this.lastRound >= this.leaseMs / 4;
    this.stopExpiring();
    if (!due || !this.held.size) return;
    this.lastRound = Date.now();
    this.round = this.renewAll().finally(() => {
      this.round = null;
    });
    await this.round;
  }

  /** Jobs whose lease could not be renewed in time stop now, while the lease still covers their stop. */
  private stopExpiring(): void {
    const now = Date.now();
    for (const { lease, renewedAt, settled } of this.held.values()) {
      if (settled || lease.signal.aborted || now - renewedAt < this.stopAfterMs) continue;
      this.opts.log.warn({ job: lease.id, unrenewedSeconds: (now - renewedAt) / 1000 }, 'lease could not be renewed; stopping the job at a safe point before it expires');
      this.stop(lease.id, 'lease_lost');
    }
  }

  private async renewAll(): Promise<void> {
    let failed = false;
    let renewed = 0;
    for (const held of this.held.values()) {
      const { lease } = held;
      // A stopped job that has not returned yet is on its way out; one that has returned still owns its row until its outcome is written.
      if (lease.signal.aborted && !held.settled) continue;
      renewed++;
      const sentAt = Date.now();
      try {
        const next = await renewLease(this.store, lease.table, lease.id, this.opts.workerId, this.opts.leaseSeconds);
        if (next) {
          lease.expiresAt = next;
          held.renewedAt = sentAt;
        } else if (this.held.get(lease.id) === held && !held.settled) {
          this.opts.log.warn({ job: lease.id }, 'lease lost; stopping the job');
          this.stop(lease.id, 'lease_lost');
        }
      } catch (err) {
        failed = true;
        if (!this.opts.outage.failed(err, 'lease renewal')) this.opts.log.error({ err, job: lease.id }, 'lease renewal failed');
      }
    }
    this.failing = failed;
    if (renewed && !failed) this.opts.outage.ok();
  }
}
