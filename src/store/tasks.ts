import { sql } from 'kysely';
import { LIST_PAGE, TASK_FIELDS, type ListQuery, type TaskField } from '../domain/schemas/training.js';
import type { TenantScope } from '../auth/principal.js';
import { isTerminal, TRAINING_LIFECYCLE, type TransitionName } from '../domain/lifecycle.js';
import type { Store, TrainingTaskRow } from './db.js';
import { LifecycleStore, type Executor, type RemoveResult } from './lifecycle-store.js';
import { isoNow } from '../util/time.js';
import { uploadIdOf } from '../preprocess/sources.js';

export type { Executor, StatusListener, TransitionOptions, TransitionResult } from './lifecycle-store.js';

/** A row without the engine's bookkeeping: the columns a TrainingTask is made of. */
export type TaskViewRow = Pick<TrainingTaskRow, TaskField>;

/** The training task table under the training lifecycle. */
export class TaskStore extends LifecycleStore<TrainingTaskRow, TransitionName> {
  constructor(store: Store) {
    super(store, 'training_tasks', TRAINING_LIFECYCLE, 'origin_tenant_id');
  }

  /**
   * Newest first; ties on the millisecond are broken by the time-ordered id, which the list
   * indexes end with, so a page is read in index order and never sorted. Only the named
   * columns are read: a narrow list leaves each task's logs (up to 64 KiB) on disk.
   */
  list(scope: TenantScope, query: ListQuery): Promise<TaskViewRow[]>;
  list(scope: TenantScope, query: ListQuery, columns: readonly TaskField[]): Promise<Partial<TaskViewRow>[]>;
  async list(scope: TenantScope, query: ListQuery, columns: readonly TaskField[] = TASK_FIELDS): Promise<Partial<TaskViewRow>[]> {
    const rows = await this.listQuery(scope, query, columns).execute();
    // node-postgres parses a json column itself; SQLite has no JSON type and hands over text.
    return rows.map((row) => rowOf(columns, typeof row.values === 'string' ? (JSON.parse(row.values) as unknown[]) : row.values));
  }

  /**
   * Records that a finished task's photos are deleted, as a compare-and-set on its finished
   * status and an empty lease, so a retry or a claim that lands first makes it miss. A task whose
   * photos were deleted already is returned as it is. `alongside` commits with the mark, and only with it.
   */
  async markPhotosDeleted(id: string, scope?: TenantScope, alongside?: (trx: Executor, row: TrainingTaskRow) => Promise<void>): Promise<RemoveResult<TrainingTaskRow>> {
    for (let tries = 0; tries < 5; tries++) {
      const result = await this.db.transaction().execute(async (trx): Promise<RemoveResult<TrainingTaskRow> | null> => {
        const row = await this.get(id, scope, trx);
        if (!row) return { ok: false, reason: 'not_found' };
        if (row.photos_deleted_at !== null) return { ok: true, row };
        if (!isTerminal(row.status)) return { ok: false, reason: 'unfinished', row };
        if (row.lease_owner !== null) return { ok: false, reason: 'stopping', row };
        const now = isoNow();
        const marked = await trx
          .updateTable('training_tasks')
          .set({ photos_deleted_at: now, updated_at: now })
          .where('id', '=', id)
          .where('status', '=', row.status)
          .where('lease_owner', 'is', null)
          .where('photos_deleted_at', 'is', null)
          .returningAll()
          .executeTakeFirst();
        if (!marked) return null;
        await alongside?.(trx, marked);
        return { ok: true, row: marked };
      });
      if (result) return result;
    }
    throw new Error(`training_tasks ${id}: deleting its photos kept losing the race; giving up`);
  }

  /** Finished tasks, unheld, whose photos are kept and that last changed before `cutoff`: what photo retention deletes. */
  photosDue(cutoff: string): Promise<{ id: string }[]> {
    return this.finishedBefore(cutoff, 'photos_deleted_at');
  }

  /** Every task of an entity within the scope, oldest first: what erasing the entity removes. */
  ofEntity(scope: TenantScope, entityId: string): Promise<Pick<TrainingTaskRow, 'id' | 'status' | 'source_images' | 'origin_tenant_id'>[]> {
    let q = this.db.selectFrom('training_tasks').select(['id', 'status', 'source_images', 'origin_tenant_id']).where('entity_id', '=', entityId);
    if (!scope.all) q = q.where(this.tenantIs(scope.tenantId));
    return q.orderBy('created_at').orderBy('id').execute();
  }

  /**
   * Ids of the uploads that tasks not yet preprocessed name: the upload sweep keeps them, since
   * preprocessing copies an upload into the task's own folder only when it runs.
   */
  async uploadsAwaitingPreprocessing(): Promise<Set<string>> {
    const rows = await this.db.selectFrom('training_tasks').select('source_images').where('status', 'in', ['PENDING', 'PREPROCESSING']).execute();
    const ids = new Set<string>();
    for (const row of rows) {
      for (const source of JSON.parse(row.source_images) as unknown[]) {
        const id = typeof source === 'string' ? uploadIdOf(source) : undefined;
        if (id) ids.add(id);
      }
    }
    return ids;
  }

  /**
   * The list's SELECT. Each row comes back as one JSON array of the columns: both drivers
   * build a row object of 50 columns slowly (better-sqlite3 through V8's API, as a
   * dictionary-mode object; node-postgres field by field off the wire), and a page of them
   * took half of a list's time. The database writes the array in C and V8's JSON parser reads
   * it at under half the cost, with the same values: both write floats with round-trip
   * precision. (Postgres takes at most 100 arguments to json_build_array; a task has 54 fields.)
   */
  listQuery(scope: TenantScope, query: ListQuery, columns: readonly TaskField[]) {
    let q = this.db.selectFrom('training_tasks');
    if (!scope.all) q = q.where(this.tenantIs(scope.tenantId));
    if (query.status) q = q.where('status', '=', query.status);
    if (query.entity_id) q = q.where('entity_id', '=', query.entity_id);
    if (query.tenant_id !== undefined) q = q.where(this.tenantIs(query.tenant_id));
    const cols = sql.join(columns.map((c) => sql.ref(c)));
    const values = this.store.dialect === 'postgres' ? sql<unknown[] | string>`json_build_array(${cols})` : sql<unknown[] | string>`json_array(${cols})`;
    return q
      .select(values.as('values'))
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(query.limit ?? LIST_PAGE.limit)
      .offset(query.skip ?? LIST_PAGE.skip);
  }
}

/**
 * The full list's row object, built by a function written once from the column list: an object
 * literal of all 54 columns gets its shape in one step, which measured 9% of a Postgres list
 * page's CPU less than copying a template and setting the columns one by one. The names are
 * the schema's own field names, quoted.
 */
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- generated from TASK_FIELDS, constant at start
const fullRow = new Function('v', `return {${TASK_FIELDS.map((f, i) => `${JSON.stringify(f)}: v[${i}]`).join(', ')}};`) as (values: unknown[]) => TaskViewRow;

/** The columns' values, in the order they were selected, as a row object. */
function rowOf(columns: readonly TaskField[], values: unknown[]): Partial<TaskViewRow> {
  if (columns === TASK_FIELDS) return fullRow(values);
  const row: Record<string, unknown> = {};
  for (let i = 0; i < columns.length; i++) row[columns[i]] = values[i];
  return row;
}

/** A task not yet finished that continues from this task's LoRA, if any: it has yet to copy it. */
export function unfinishedTaskContinuing(db: Executor, taskId: string): Promise<Pick<TrainingTaskRow, 'id' | 'status'> | undefined> {
  return db.selectFrom('training_tasks').select(['id', 'status']).where('init_lora_task_id', '=', taskId).where('status', 'not in', TRAINING_LIFECYCLE.terminal).executeTakeFirst();
}
