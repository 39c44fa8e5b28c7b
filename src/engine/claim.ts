import { sql, type RawBuilder } from 'kysely';
import { onlyEdge } from '../domain/lifecycle.js';
import type { LeasedRow } from '../store/lifecycle-store.js';
import { isoIn, isoNow } from '../util/time.js';
import type { JobKind } from './job-kind.js';

export interface ClaimRequest {
  workerId: string;
  leaseSeconds: number;
  /** Leased jobs one tenant may hold at once; 0 means no cap. */
  maxRunningPerTenant: number;
}

/**
 * The runnable row a claim takes: the kind's waiting status, oldest first, after the highest
 * priority for kinds that have one. The tenant cap counts rows holding a lease rather than
 * rows in a running status, because a cancelled job keeps its slot until its process has exited.
 */
function candidate<Row extends LeasedRow>(kind: JobKind<Row>, from: string, cap: number, lockClause: RawBuilder<unknown>) {
  const table = sql.table(kind.rows.table);
  const order = kind.claim.order === 'priority' ? sql`c.priority DESC, c.created_at ASC, c.id ASC` : sql`c.created_at ASC, c.id ASC`;
  const tenant = kind.claim.tenantColumn && sql.ref(kind.claim.tenantColumn);
  const tenantCap =
    tenant && cap > 0 ? sql`AND (c.${tenant} IS NULL OR (SELECT count(*) FROM ${table} r WHERE r.${tenant} = c.${tenant} AND r.lease_owner IS NOT NULL) < ${cap})` : sql``;
  return sql`
    SELECT c.id FROM ${table} c
    WHERE c.status = ${from} ${tenantCap}
    ORDER BY ${order}
    LIMIT 1
    ${lockClause}`;
}

/**
 * Claims the next runnable job of a kind in one statement and returns its row, or undefined
 * when nothing is runnable. The claim moves the status, counts the attempt, writes the lease,
 * the first start time and, where the kind keeps one, the run id `<row>:<kind>:<attempt>`
 * (the seed's celery_*_task_id).
 *
 * Postgres: `FOR UPDATE SKIP LOCKED` in the CTE lets concurrent workers take different rows
 * without waiting on each other. The tenant cap is read without a lock, so two workers
 * claiming for one tenant at the same instant can overshoot it by one; it is a fairness
 * bound, not a safety one (decision 0002).
 *
 * SQLite: one writer at a time. The transaction begins IMMEDIATE (see store/db.ts), so the
 * read of the candidate and the write of the claim cannot interleave with another claimer.
 */
export async function claimNext<Row extends LeasedRow>(kind: JobKind<Row>, req: ClaimRequest): Promise<Row | undefined> {
  const { rows } = kind;
  const { from, to } = onlyEdge(rows.lifecycle, kind.claim.transition);
  const table = sql.table(rows.table);
  const now = isoNow();
  const started = sql.ref(kind.claim.startedColumn);
  const runId = kind.claim.runIdColumn ? sql`, ${sql.ref(kind.claim.runIdColumn)} = ${table}.id || ${`:${kind.name}:`} || (attempt + 1)` : sql``;
  const assignments = sql`
    status = ${to},
    attempt = attempt + 1,
    lease_owner = ${req.workerId},
    lease_expires_at = ${isoIn(req.leaseSeconds * 1000)},
    updated_at = ${now},
    ${started} = COALESCE(${started}, ${now})
    ${runId}`;

  const statement =
    rows.store.dialect === 'postgres'
      ? sql<Row>`
          WITH next AS (${candidate(kind, from, req.maxRunningPerTenant, sql`FOR UPDATE SKIP LOCKED`)})
          UPDATE ${table} SET ${assignments}
          FROM next WHERE ${table}.id = next.id
          RETURNING ${table}.*`
      : sql<Row>`
          UPDATE ${table} SET ${assignments}
          WHERE id = (${candidate(kind, from, req.maxRunningPerTenant, sql``)}) AND status = ${from}
          RETURNING *`;
  // The status listeners (webhook outbox, notifications) write in the claim's transaction.
  return rows.db.transaction().execute(async (trx) => {
    const row = (await statement.execute(trx)).rows[0];
    if (row) await rows.notify(trx, { ...row, status: from }, row);
    return row;
  });
}
