import type { RunSample } from '../domain/estimate.js';
import type { Store } from './db.js';
import type { Executor } from './lifecycle-store.js';
import { isoNow } from '../util/time.js';

/**
 * The history of every run of every job: who ran which attempt, when, and how it ended. A row
 * is opened when a worker starts a job and closed when the job returns, or by the rescuer
 * when the worker died without closing it. `ended` writes a whole run at once: one that could
 * not be opened when it started.
 */
export async function openRun(
  store: Store,
  run: { jobId: string; kind: string; attempt: number; workerId: string; startedAt: number; tenantId: string | null; slot: string; ended?: { at: number; outcome: string } },
): Promise<number> {
  const row = await store.db
    .insertInto('stage_runs')
    .values({
      task_id: run.jobId,
      stage: run.kind,
      attempt: run.attempt,
      worker_id: run.workerId,
      started_at: isoNow(run.startedAt),
      tenant_id: run.tenantId,
      slot: run.slot,
      ended_at: run.ended ? isoNow(run.ended.at) : null,
      outcome: run.ended?.outcome ?? null,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return Number(row.id);
}

/**
 * `endedAt` is when the job's process ended, which a write delayed by an outage must not move.
 * `db` is the transaction of the job's own outcome where one landed, so that a job's status
 * and the record of its run never disagree.
 */
export async function closeRun(db: Executor, runId: number, outcome: string, endedAt: number): Promise<void> {
  await db
    .updateTable('stage_runs')
    .set({ ended_at: isoNow(endedAt), outcome })
    .where('id', '=', runId)
    .execute();
}

/** Closes the runs a dead worker left open on a job: the rescue is the last we know of them. */
export async function closeAbandonedRuns(db: Executor, jobId: string, workerId: string): Promise<void> {
  await db
    .updateTable('stage_runs')
    .set({ ended_at: isoNow(), outcome: 'lease_expired' })
    .where('task_id', '=', jobId)
    .where('worker_id', '=', workerId)
    .where('ended_at', 'is', null)
    .execute();
}

/** Every run of one job, oldest first. */
export function runsOf(db: Executor, jobId: string) {
  return db.selectFrom('stage_runs').select(['stage', 'attempt', 'slot', 'worker_id', 'started_at', 'ended_at', 'outcome']).where('task_id', '=', jobId).orderBy('id').execute();
}

/**
 * The latest training runs of a base model that trained a task through in one attempt: the
 * ground an estimate of a new task's training time stands on. Runs of deleted tasks drop out,
 * since their step counts went with them.
 */
export async function recentTrainingRuns(db: Executor, baseModelPath: string, limit = 20): Promise<RunSample[]> {
  const rows = await db
    .selectFrom('stage_runs as r')
    .innerJoin('training_tasks as t', 't.id', 'r.task_id')
    .select(['t.steps', 'r.started_at', 'r.ended_at'])
    .where('r.stage', '=', 'train')
    .where('r.outcome', '=', 'completed')
    .where('r.attempt', '=', 1)
    .where('t.base_model_path', '=', baseModelPath)
    .orderBy('r.id', 'desc')
    .limit(limit)
    .execute();
  return rows.flatMap((r) => (r.ended_at === null ? [] : [{ steps: r.steps, seconds: (Date.parse(r.ended_at) - Date.parse(r.started_at)) / 1000 }]));
}
