import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { LeasedTable } from '../store/lifecycle-store.js';
import type { Store } from '../store/db.js';
import { isoIn } from '../util/time.js';
import type { StopReason } from './job-kind.js';

/** Both leased tables share the lease columns; Kysely cannot type a table chosen at run time. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the table is chosen at run time
const leased = (store: Store) => store.db as unknown as Kysely<any>;

/** Extends a lease; false when the caller no longer holds it (rescued, or never did). */
export async function renewLease(store: Store, table: LeasedTable, id: string, workerId: string, leaseSeconds: number): Promise<boolean> {
  const res = await leased(store)
    .updateTable(table)
    .set({ lease_expires_at: isoIn(leaseSeconds * 1000) })
    .where('id', '=', id)
    .where('lease_owner', '=', workerId)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** Drops a lease the caller holds, whatever the status: the slot is free once this returns. */
export async function dropLease(store: Store, table: LeasedTable, id: string, workerId: string): Promise<void> {
  await leased(store).updateTable(table).set({ lease_owner: null, lease_expires_at: null }).where('id', '=', id).where('lease_owner', '=', workerId).execute();
}

/** A lease this worker holds on one row, and the signal that stops the job running under it. */
export interface Lease {
  id: string;
  table: LeasedTable;
  signal: AbortSignal;
}

/**
 * Keeps this worker's leases alive and owns their stop signals, as bullmq's lock manager does
 * for its jobs. Each lease is renewed at a third of its length, so two missed beats still
 * leave it valid; a renewal that finds the lease gone (rescued by another worker) stops the
 * job with `lease_lost`. Nothing else in the worker renews or drops a lease.
 */
export class LeaseKeeper {
  private held = new Map<string, { lease: Lease; abort: AbortController }>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Store,
    private readonly opts: { workerId: string; leaseSeconds: number; log: Logger },
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.renewAll(), Math.max(200, (this.opts.leaseSeconds * 1000) / 3));
  }

  stopRenewing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Takes over a lease the claim just wrote. */
  hold(table: LeasedTable, id: string): Lease {
    const abort = new AbortController();
    const lease = { id, table, signal: abort.signal };
    this.held.set(id, { lease, abort });
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

  /** Gives the lease back, whatever the status: the slot is free once this returns. */
  async release(lease: Lease): Promise<void> {
    this.held.delete(lease.id);
    await dropLease(this.store, lease.table, lease.id, this.opts.workerId);
  }

  private async renewAll(): Promise<void> {
    for (const { lease } of this.held.values()) {
      try {
        const held = await renewLease(this.store, lease.table, lease.id, this.opts.workerId, this.opts.leaseSeconds);
        if (!held && this.held.has(lease.id) && !lease.signal.aborted) {
          this.opts.log.warn({ job: lease.id }, 'lease lost; stopping the job');
          this.stop(lease.id, 'lease_lost');
        }
      } catch (err) {
        this.opts.log.error({ err, job: lease.id }, 'lease renewal failed');
      }
    }
  }
}
