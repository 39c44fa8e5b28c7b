import { sql } from 'kysely';
import type { LeasedRow, LifecycleStore } from '../store/lifecycle-store.js';

/** Postgres channel on which a cancel wakes the worker running the job. */
export const CANCEL_CHANNEL = 'kiln_cancel';
/** Postgres channel on which new runnable work wakes idle workers. */
export const WORK_CHANNEL = 'kiln_work';

/**
 * On Postgres, a status change wakes whoever cares: workers running a job that was just
 * cancelled, and idle workers when work became runnable. NOTIFY inside the writing
 * transaction is delivered at commit, so no one wakes for a change that rolled back.
 * SQLite has no such channel; workers poll, and the embedded worker is poked in-process.
 */
export function installNotifications<Row extends LeasedRow>(rows: LifecycleStore<Row, string>): void {
  if (rows.store.dialect !== 'postgres') return;
  rows.onStatusChange(async (trx, before, after) => {
    if (after.status === before.status) return;
    if (after.status === 'CANCELLED') await sql`select pg_notify(${CANCEL_CHANNEL}, ${after.id})`.execute(trx);
    if (rows.waiting.includes(after.status)) await sql`select pg_notify(${WORK_CHANNEL}, ${after.id})`.execute(trx);
  });
}
