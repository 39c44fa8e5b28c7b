import type { ExpressionBuilder, Kysely, Transaction } from 'kysely';
import type { ListQuery } from '../api/schemas/training.js';
import type { TenantScope } from '../auth/principal.js';
import { nextStatus, type TrainingStatus, type TransitionName } from '../engine/lifecycle.js';
import { isoNow } from '../util/time.js';
import type { KilnDatabase, Store, TrainingTaskRow } from './db.js';

export type Executor = Kysely<KilnDatabase> | Transaction<KilnDatabase>;

/** Called inside the transaction of every status change: the webhook outbox hooks in here. */
export type StatusListener = (trx: Executor, before: TrainingTaskRow, after: TrainingTaskRow) => Promise<void>;

export type TransitionResult =
  | { ok: true; row: TrainingTaskRow; before: TrainingTaskRow }
  | { ok: false; reason: 'not_found' }
  | { ok: false; reason: 'forbidden'; row: TrainingTaskRow };

export interface TransitionOptions {
  scope?: TenantScope;
  /** A worker's write also requires that it still holds the lease. */
  leaseOwner?: string;
  /** The rescuer also requires the very expiry it saw, so a last-moment renewal wins. */
  leaseExpiresAt?: string;
  /** Refuse while any worker still holds the task (a cancelled stage whose process is exiting). */
  requireNoLease?: boolean;
  /** Columns written together with the status. */
  set?: (before: TrainingTaskRow, now: string) => Partial<TrainingTaskRow>;
}

/** `= tenant`, or `IS NULL` for the tenant-less space (Postgres takes no parameter after IS). */
function tenantIs(tenantId: string | null) {
  return (eb: ExpressionBuilder<KilnDatabase, 'training_tasks'>) =>
    tenantId === null ? eb('origin_tenant_id', 'is', null) : eb('origin_tenant_id', '=', tenantId);
}

/** Reads and compare-and-set writes of the task table. The queue's claim SQL is in engine/claim.ts. */
export class TaskStore {
  private listeners: StatusListener[] = [];

  constructor(readonly store: Store) {}

  get db(): Kysely<KilnDatabase> {
    return this.store.db;
  }

  onStatusChange(listener: StatusListener): void {
    this.listeners.push(listener);
  }

  async insert(row: TrainingTaskRow): Promise<TrainingTaskRow> {
    return this.db.transaction().execute(async (trx) => {
      await trx.insertInto('training_tasks').values(row).execute();
      await this.notify(trx, { ...row, status: '' }, row);
      return row;
    });
  }

  async get(id: string, scope?: TenantScope, db: Executor = this.db): Promise<TrainingTaskRow | undefined> {
    let q = db.selectFrom('training_tasks').selectAll().where('id', '=', id);
    if (scope && !scope.all) q = q.where(tenantIs(scope.tenantId));
    return q.executeTakeFirst();
  }

  /** Newest first; ties on the millisecond are broken by the time-ordered id. */
  async list(scope: TenantScope, query: ListQuery): Promise<TrainingTaskRow[]> {
    let q = this.db.selectFrom('training_tasks').selectAll();
    if (!scope.all) q = q.where(tenantIs(scope.tenantId));
    if (query.status) q = q.where('status', '=', query.status);
    if (query.entity_id) q = q.where('entity_id', '=', query.entity_id);
    return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit).offset(query.skip).execute();
  }

  /**
   * Applies a named transition of the lifecycle table as a compare-and-set: the UPDATE names
   * the status it read (and the lease, for a worker), so a concurrent writer makes it miss
   * rather than overwrite. A miss is re-read and retried; a status the table forbids is
   * returned as `forbidden` with the row as it stands.
   */
  async transition(id: string, name: TransitionName, opts: TransitionOptions = {}): Promise<TransitionResult> {
    for (let tries = 0; tries < 5; tries++) {
      const result = await this.db.transaction().execute(async (trx) => {
        const before = await this.get(id, opts.scope, trx);
        if (!before) return { ok: false, reason: 'not_found' } as const;
        const to = nextStatus(name, before.status as TrainingStatus);
        const leaseMoved =
          (opts.leaseOwner !== undefined && before.lease_owner !== opts.leaseOwner) ||
          (opts.leaseExpiresAt !== undefined && before.lease_expires_at !== opts.leaseExpiresAt) ||
          (opts.requireNoLease === true && before.lease_owner !== null);
        if (!to || leaseMoved) {
          return { ok: false, reason: 'forbidden', row: before } as const;
        }
        const now = isoNow();
        let update = trx
          .updateTable('training_tasks')
          .set({ ...opts.set?.(before, now), status: to, updated_at: now })
          .where('id', '=', id)
          .where('status', '=', before.status);
        if (opts.leaseOwner !== undefined) update = update.where('lease_owner', '=', opts.leaseOwner);
        if (opts.leaseExpiresAt !== undefined) update = update.where('lease_expires_at', '=', opts.leaseExpiresAt);
        if (opts.requireNoLease) update = update.where('lease_owner', 'is', null);
        const after = await update.returningAll().executeTakeFirst();
        if (!after) return null;
        await this.notify(trx, before, after);
        return { ok: true, row: after, before } as const;
      });
      if (result) return result;
    }
    throw new Error(`task ${id}: ${name} kept losing the race; giving up`);
  }

  /** Writes progress fields of a running stage; the row as written, or undefined once the lease is gone. */
  async updateRunning(id: string, leaseOwner: string, set: Partial<TrainingTaskRow>, db: Executor = this.db): Promise<TrainingTaskRow | undefined> {
    return db
      .updateTable('training_tasks')
      .set({ ...set, updated_at: isoNow() })
      .where('id', '=', id)
      .where('lease_owner', '=', leaseOwner)
      .where('status', 'in', ['PREPROCESSING', 'TRAINING'])
      .returningAll()
      .executeTakeFirst();
  }

  /** Runs the status listeners; writers outside `transition` (the claim) call it in their transaction. */
  async notify(trx: Executor, before: TrainingTaskRow, after: TrainingTaskRow): Promise<void> {
    for (const listener of this.listeners) await listener(trx, before, after);
  }
}
