import type { ExpressionBuilder, Kysely, Transaction } from 'kysely';
import type { TenantScope } from '../auth/principal.js';
import { nextStatus, runningStatuses, waitingStatuses, type Lifecycle } from '../domain/lifecycle.js';
import { isoNow } from '../util/time.js';
import type { KilnDatabase, Store } from './db.js';
import { claimKey, findClaim, forgetKeysOf, IdempotencyKeyReused, type IdempotencyKey, type PriorClaim } from './idempotency.js';

export type Executor = Kysely<KilnDatabase> | Transaction<KilnDatabase>;

/** Tables whose rows are leased to workers. */
export type LeasedTable = 'training_tasks' | 'generations';

/** What every leased row has: the engine's bookkeeping next to its own fields. */
export interface LeasedRow {
  id: string;
  status: string;
  updated_at: string;
  attempt: number;
  lease_owner: string | null;
  lease_expires_at: string | null;
}

/** Called inside the transaction of every status change: the webhook outbox and NOTIFY hook in here. */
export type StatusListener<Row> = (trx: Executor, before: Row, after: Row) => Promise<void>;

/** A delete refused: the row is not finished, or it is but its worker has not let go of it yet. */
export type RemoveResult<Row> = { ok: true; row: Row } | { ok: false; reason: 'not_found' } | { ok: false; reason: 'unfinished' | 'stopping'; row: Row };

export type TransitionResult<Row> = { ok: true; row: Row; before: Row } | { ok: false; reason: 'not_found' } | { ok: false; reason: 'forbidden'; row: Row };

export interface TransitionOptions<Row> {
  scope?: TenantScope;
  /** A worker's write also requires that it still holds the lease. */
  leaseOwner?: string;
  /** The rescuer also requires the very expiry it saw, so a last-moment renewal wins. */
  leaseExpiresAt?: string;
  /** Refuse while any worker still holds the row (a cancelled job whose process is exiting). */
  requireNoLease?: boolean;
  /** Columns written together with the status. */
  set?: (before: Row, now: string) => Partial<Row>;
  /** Other writes that commit with the status change, and only with it. */
  alongside?: (trx: Executor) => Promise<void>;
}

/**
 * Reads and compare-and-set writes of one leased table under its lifecycle. Every status
 * write goes through `transition`; the queue's claim SQL is in engine/claim.ts.
 */
export class LifecycleStore<Row extends LeasedRow, T extends string> {
  private listeners: StatusListener<Row>[] = [];
  private committed: ((row: Row) => void)[] = [];
  readonly running: string[];
  /** Statuses a claim takes rows from: a row entering one is new work. */
  readonly waiting: string[];

  constructor(
    readonly store: Store,
    readonly table: LeasedTable,
    readonly lifecycle: Lifecycle<string, T | 'release'>,
    private readonly tenantColumn: 'origin_tenant_id' | 'tenant_id',
  ) {
    this.running = runningStatuses(lifecycle);
    this.waiting = waitingStatuses(lifecycle);
  }

  get db(): Kysely<KilnDatabase> {
    return this.store.db;
  }

  /** The tenant a row belongs to. */
  tenantOf(row: Row): string | null {
    return (row as unknown as Record<string, string | null>)[this.tenantColumn];
  }

  /** The table as Kysely sees a table chosen at run time; its columns are those of `Row`. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely cannot type a table chosen at run time
  protected rows(db: Executor = this.db): Kysely<any> {
    return db;
  }

  onStatusChange(listener: StatusListener<Row>): void {
    this.listeners.push(listener);
  }

  /** Called after the commit of an insert or a status change, in this process: how the embedded worker hears of new work at once. */
  onCommitted(listener: (row: Row) => void): void {
    this.committed.push(listener);
  }

  private announce(row: Row): void {
    for (const listener of this.committed) listener(row);
  }

  async insert(row: Row): Promise<Row> {
    return (await this.insertOnce(row)).row;
  }

  /**
   * Inserts a new row, or with an Idempotency-Key that an earlier request already used, returns
   * the row that request made (`replayed`) and inserts nothing. The key is claimed in the
   * insert's transaction, so two concurrent requests with one key make one row.
   */
  async insertOnce(row: Row, key?: IdempotencyKey): Promise<{ row: Row; replayed: boolean }> {
    const prior = await this.db.transaction().execute(async (trx) => {
      if (key) {
        const claimed = await claimKey(trx, key, row.id);
        if (claimed) return claimed;
      }
      await this.rows(trx).insertInto(this.table).values(row).execute();
      await this.notify(trx, { ...row, status: '' }, row);
      return undefined;
    });
    if (prior) return { row: await this.replay(key!, prior), replayed: true };
    this.announce(row);
    return { row, replayed: false };
  }

  /** The row an earlier request with this key made, or undefined if none did; a different request with the key is refused. */
  async replayed(key: IdempotencyKey): Promise<Row | undefined> {
    const prior = await findClaim(this.db, key);
    return prior && this.replay(key, prior);
  }

  private async replay(key: IdempotencyKey, prior: PriorClaim): Promise<Row> {
    if (prior.request_sha256 !== key.requestSha256) throw new IdempotencyKeyReused(key.key);
    const row = await this.get(prior.resource_id);
    // Keys are deleted with their rows, in the same transaction.
    if (!row) throw new Error(`${this.table} ${prior.resource_id}, made with an Idempotency-Key, is missing`);
    return row;
  }

  /** `= tenant`, or `IS NULL` for the tenant-less space (Postgres takes no parameter after IS). */
  protected tenantIs(tenantId: string | null) {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the table, and so its tenant column, is chosen at run time
    return (eb: ExpressionBuilder<any, any>) => (tenantId === null ? eb(this.tenantColumn, 'is', null) : eb(this.tenantColumn, '=', tenantId));
  }

  /**
   * Ids of finished rows no worker holds that last changed before `cutoff`, and whose `stillNull`
   * column, if named, is still empty: what a retention sweep takes.
   */
  finishedBefore(cutoff: string, stillNull?: keyof Row & string): Promise<{ id: string }[]> {
    let q = this.rows().selectFrom(this.table).select('id').where('status', 'in', this.lifecycle.terminal).where('lease_owner', 'is', null).where('updated_at', '<', cutoff);
    if (stillNull) q = q.where(stillNull, 'is', null);
    return q.execute();
  }

  async get(id: string, scope?: TenantScope, db: Executor = this.db): Promise<Row | undefined> {
    let q = this.rows(db).selectFrom(this.table).selectAll().where('id', '=', id);
    if (scope && !scope.all) q = q.where(this.tenantIs(scope.tenantId));
    return q.executeTakeFirst() as Promise<Row | undefined>;
  }

  /**
   * Applies a named transition of the lifecycle table as a compare-and-set: the UPDATE names
   * the status it read (and the lease, for a worker), so a concurrent writer makes it miss
   * rather than overwrite. A miss is re-read and retried; a status the table forbids is
   * returned as `forbidden` with the row as it stands.
   */
  async transition(id: string, name: T | 'release', opts: TransitionOptions<Row> = {}): Promise<TransitionResult<Row>> {
    for (let tries = 0; tries < 5; tries++) {
      const result = await this.db.transaction().execute(async (trx) => {
        const before = await this.get(id, opts.scope, trx);
        if (!before) return { ok: false, reason: 'not_found' } as const;
        const to = nextStatus(this.lifecycle, name, before.status);
        const leaseMoved =
          (opts.leaseOwner !== undefined && before.lease_owner !== opts.leaseOwner) ||
          (opts.leaseExpiresAt !== undefined && before.lease_expires_at !== opts.leaseExpiresAt) ||
          (opts.requireNoLease === true && before.lease_owner !== null);
        if (!to || leaseMoved) return { ok: false, reason: 'forbidden', row: before } as const;
        const now = isoNow();
        let update = this.rows(trx)
          .updateTable(this.table)
          .set({ ...opts.set?.(before, now), status: to, updated_at: now })
          .where('id', '=', id)
          .where('status', '=', before.status);
        if (opts.leaseOwner !== undefined) update = update.where('lease_owner', '=', opts.leaseOwner);
        if (opts.leaseExpiresAt !== undefined) update = update.where('lease_expires_at', '=', opts.leaseExpiresAt);
        if (opts.requireNoLease) update = update.where('lease_owner', 'is', null);
        const after = (await update.returningAll().executeTakeFirst()) as Row | undefined;
        if (!after) return null;
        await opts.alongside?.(trx);
        await this.notify(trx, before, after);
        return { ok: true, row: after, before } as const;
      });
      if (result?.ok) this.announce(result.row);
      if (result) return result;
    }
    throw new Error(`${this.table} ${id}: ${name} kept losing the race; giving up`);
  }

  /**
   * Deletes a finished row that no worker holds, with its webhook deliveries and idempotency keys,
   * as one compare-and-set: the DELETE names the status it read and an empty lease, so a retry
   * or a claim that lands first makes it miss. `alongside` runs in the same transaction and
   * may throw to refuse. The row's files are the caller's to remove, after this commits.
   */
  async remove(id: string, opts: { scope?: TenantScope; alongside?: (trx: Executor, row: Row) => Promise<void> } = {}): Promise<RemoveResult<Row>> {
    for (let tries = 0; tries < 5; tries++) {
      const result = await this.db.transaction().execute(async (trx) => {
        const row = await this.get(id, opts.scope, trx);
        if (!row) return { ok: false, reason: 'not_found' } as const;
        if (!this.lifecycle.terminal.includes(row.status)) return { ok: false, reason: 'unfinished', row } as const;
        if (row.lease_owner !== null) return { ok: false, reason: 'stopping', row } as const;
        const gone = await this.rows(trx).deleteFrom(this.table).where('id', '=', id).where('status', '=', row.status).where('lease_owner', 'is', null).executeTakeFirst();
        if (Number(gone.numDeletedRows) !== 1) return null;
        await opts.alongside?.(trx, row);
        await forgetKeysOf(trx, id);
        await trx.deleteFrom('webhook_deliveries').where('task_id', '=', id).execute();
        return { ok: true, row } as const;
      });
      if (result) return result;
    }
    throw new Error(`${this.table} ${id}: delete kept losing the race; giving up`);
  }

  /** Writes progress fields of a running job; the row as written, or undefined once the lease is gone. */
  async updateRunning(id: string, leaseOwner: string, set: Partial<Row>, db: Executor = this.db): Promise<Row | undefined> {
    return this.rows(db)
      .updateTable(this.table)
      .set({ ...set, updated_at: isoNow() })
      .where('id', '=', id)
      .where('lease_owner', '=', leaseOwner)
      .where('status', 'in', this.running)
      .returningAll()
      .executeTakeFirst() as Promise<Row | undefined>;
  }

  /** Runs the status listeners; writers outside `transition` (the claim) call it in their transaction. */
  async notify(trx: Executor, before: Row, after: Row): Promise<void> {
    for (const listener of this.listeners) await listener(trx, before, after);
  }
}
