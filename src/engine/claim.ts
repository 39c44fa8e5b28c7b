import { sql, type RawBuilder } from 'kysely';
import type { TrainingTaskRow } from '../store/db.js';
import type { TaskStore } from '../store/tasks.js';
import { isoIn, isoNow } from '../util/time.js';
import { TRANSITIONS } from './lifecycle.js';

export type StageKind = 'preprocess' | 'train';

/** Per stage: the claim transition of the lifecycle table and the seed columns it fills. */
const STAGES: Record<StageKind, { transition: 'claim_preprocessing' | 'claim_training'; startedColumn: string; idColumn: string }> = {
  preprocess: { transition: 'claim_preprocessing', startedColumn: 'preprocessing_started_at', idColumn: 'celery_preprocessing_task_id' },
  train: { transition: 'claim_training', startedColumn: 'started_at', idColumn: 'celery_training_task_id' },
};

export interface ClaimRequest {
  stage: StageKind;
  workerId: string;
  leaseSeconds: number;
  /** Leased stages one tenant may hold at once; 0 means no cap. */
  maxRunningPerTenant: number;
}

function stageParts(stage: StageKind) {
  const { transition, startedColumn, idColumn } = STAGES[stage];
  const [[from, to]] = Object.entries(TRANSITIONS[transition]);
  return { from, to, started: sql.ref(startedColumn), stageId: sql.ref(idColumn) };
}

/**
 * The runnable row a claim takes: the stage's waiting status, highest priority first, then
 * oldest. The tenant cap counts rows holding a lease rather than rows in a running status,
 * because a cancelled stage keeps its slot until its process has exited.
 */
function candidate(from: string, cap: number, lockClause: RawBuilder<unknown>) {
  return sql`
    SELECT c.id FROM training_tasks c
    WHERE c.status = ${from}
      AND (${cap} = 0 OR c.origin_tenant_id IS NULL OR (
        SELECT count(*) FROM training_tasks r
        WHERE r.origin_tenant_id = c.origin_tenant_id AND r.lease_owner IS NOT NULL
      ) < ${cap})
    ORDER BY c.priority DESC, c.created_at ASC, c.id ASC
    LIMIT 1
    ${lockClause}`;
}

/**
 * Claims the next runnable stage in one statement and returns its row, or undefined when
 * nothing is runnable. The claim moves the status, counts the attempt, writes the lease and
 * the stage-attempt id (`<task>:<stage>:<attempt>`, kept in the seed's celery_*_task_id).
 *
 * Postgres: `FOR UPDATE SKIP LOCKED` in the CTE lets concurrent workers take different rows
 * without waiting on each other. The tenant cap is read without a lock, so two workers
 * claiming for one tenant at the same instant can overshoot it by one; it is a fairness
 * bound, not a safety one.
 *
 * SQLite: one writer at a time. The transaction begins IMMEDIATE (see store/db.ts), so the
 * read of the candidate and the write of the claim cannot interleave with another claimer.
 */
export async function claimNext(tasks: TaskStore, req: ClaimRequest): Promise<TrainingTaskRow | undefined> {
  const { from, to, started, stageId } = stageParts(req.stage);
  const now = isoNow();
  const expires = isoIn(req.leaseSeconds * 1000);
  const assignments = sql`
    status = ${to},
    attempt = attempt + 1,
    lease_owner = ${req.workerId},
    lease_expires_at = ${expires},
    updated_at = ${now},
    ${started} = COALESCE(${started}, ${now}),
    ${stageId} = training_tasks.id || ${`:${req.stage}:`} || (attempt + 1)`;

  const statement =
    tasks.store.dialect === 'postgres'
      ? sql<TrainingTaskRow>`
          WITH next AS (${candidate(from, req.maxRunningPerTenant, sql`FOR UPDATE SKIP LOCKED`)})
          UPDATE training_tasks SET ${assignments}
          FROM next WHERE training_tasks.id = next.id
          RETURNING training_tasks.*`
      : sql<TrainingTaskRow>`
          UPDATE training_tasks SET ${assignments}
          WHERE id = (${candidate(from, req.maxRunningPerTenant, sql``)}) AND status = ${from}
          RETURNING *`;
  // The status listeners (webhook outbox, notifications) write in the claim's transaction.
  return tasks.db.transaction().execute(async (trx) => {
    const row = (await statement.execute(trx)).rows[0];
    if (row) await tasks.notify(trx, { ...row, status: from }, row);
    return row;
  });
}
