import type { Store, TrainingTaskRow } from '../store/db.js';
import type { TaskStore } from '../store/tasks.js';
import { isoIn, isoNow } from '../util/time.js';

/** Tables whose rows are leased to workers: both carry id, lease_owner and lease_expires_at. */
export type LeasedTable = 'training_tasks' | 'generations';

/** Extends a lease; false when the caller no longer holds it (rescued, or never did). */
export async function renewLease(store: Store, taskId: string, workerId: string, leaseSeconds: number, table: LeasedTable = 'training_tasks'): Promise<boolean> {
  const res = await store.db
    .updateTable(table as 'training_tasks')
    .set({ lease_expires_at: isoIn(leaseSeconds * 1000) })
    .where('id', '=', taskId)
    .where('lease_owner', '=', workerId)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** Drops a lease the caller holds, whatever the status: the slot is free once this returns. */
export async function dropLease(store: Store, taskId: string, workerId: string): Promise<void> {
  await store.db
    .updateTable('training_tasks')
    .set({ lease_owner: null, lease_expires_at: null })
    .where('id', '=', taskId)
    .where('lease_owner', '=', workerId)
    .execute();
}

export interface RescueReport {
  requeued: TrainingTaskRow[];
  failed: TrainingTaskRow[];
  /** Leases of tasks already terminal (cancelled while their worker died): just cleared. */
  cleared: number;
}

/**
 * Returns expired leases to the queue, in batches. A running stage goes back to its waiting
 * status (the next claim counts attempt + 1 and training resumes from its newest checkpoint);
 * after `maxAttempts` claims the task fails instead, saying why. Each write is conditioned on
 * the lease it read, so a worker that renews at the last moment wins.
 */
export async function rescueExpired(tasks: TaskStore, maxAttempts: number, batch = 100): Promise<RescueReport> {
  const report: RescueReport = { requeued: [], failed: [], cleared: 0 };
  const now = isoNow();
  const expired = await tasks.db
    .selectFrom('training_tasks')
    .select(['id', 'status', 'attempt', 'lease_owner', 'lease_expires_at'])
    .where('lease_owner', 'is not', null)
    .where('lease_expires_at', '<', now)
    .orderBy('lease_expires_at')
    .limit(batch)
    .execute();
  for (const row of expired) {
    const lease = { owner: row.lease_owner!, expires: row.lease_expires_at! };
    const stillExpired = (eb: any) => eb.and([eb('lease_owner', '=', lease.owner), eb('lease_expires_at', '=', lease.expires)]);
    if (row.status !== 'PREPROCESSING' && row.status !== 'TRAINING') {
      await tasks.db.updateTable('training_tasks').set({ lease_owner: null, lease_expires_at: null }).where('id', '=', row.id).where(stillExpired).execute();
      report.cleared++;
      continue;
    }
    const stage = row.status === 'PREPROCESSING' ? 'preprocessing' : 'training';
    const giveUp = row.attempt >= maxAttempts;
    const res = await tasks.transition(row.id, giveUp ? 'fail' : 'release', {
      leaseOwner: lease.owner,
      leaseExpiresAt: lease.expires,
      set: (before, at) => ({
        lease_owner: null,
        lease_expires_at: null,
        ...(giveUp
          ? {
              error_message: `The ${stage} stage lost its worker on each of ${before.attempt} attempts (last worker: ${lease.owner}); giving up after KILN_MAX_ATTEMPTS=${maxAttempts}.`,
              eta_seconds: null,
            }
          : { queued_at: at }),
      }),
    });
    if (!res.ok) continue;
    (giveUp ? report.failed : report.requeued).push(res.row);
    // The dead worker never closed its stage run; the rescue is the last we know of it.
    await tasks.db
      .updateTable('stage_runs')
      .set({ ended_at: now, outcome: 'lease_expired' })
      .where('task_id', '=', row.id)
      .where('worker_id', '=', lease.owner)
      .where('ended_at', 'is', null)
      .execute();
  }
  return report;
}

/** Postgres channel on which a cancel wakes the worker running the task. */
export const CANCEL_CHANNEL = 'kiln_cancel';
/** Postgres channel on which new runnable work wakes idle workers. */
export const WORK_CHANNEL = 'kiln_work';
