import { sql } from 'kysely';
import type { TaskStore } from '../store/tasks.js';
import { CANCEL_CHANNEL, WORK_CHANNEL } from './leases.js';

/**
 * On Postgres, a status change wakes whoever cares: workers running a task that was just
 * cancelled, and idle workers when work became runnable. NOTIFY inside the writing
 * transaction is delivered at commit, so no one wakes for a change that rolled back.
 * SQLite has no such channel; workers poll.
 */
export function installNotifications(tasks: TaskStore): void {
  if (tasks.store.dialect !== 'postgres') return;
  tasks.onStatusChange(async (trx, before, after) => {
    if (after.status === before.status) return;
    if (after.status === 'CANCELLED') await sql`select pg_notify(${CANCEL_CHANNEL}, ${after.id})`.execute(trx);
    if (after.status === 'PENDING' || after.status === 'QUEUED') await sql`select pg_notify(${WORK_CHANNEL}, ${after.id})`.execute(trx);
  });
}
