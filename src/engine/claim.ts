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

/** The facts of a kind that decide which of its rows a claim takes first. */
export type QueueFacts<Row extends LeasedRow> = Pick<JobKind<Row>, 'rows' | 'claim'>;

/**
 * Leaves out the rows of a tenant that holds `cap` leased jobs of the table already. It counts
 * rows holding a lease rather than rows in a running status, because a cancelled job keeps its
 * slot until its process has exited.
 */
function underTenantCap<Row extends LeasedRow>(kind: QueueFacts<Row>, cap: number) {
  const tenant = kind.claim.tenantColumn && sql.ref(kind.claim.tenantColumn);
  if (!tenant || cap <= 0) return sql``;
  const table = sql.table(kind.rows.table);
  return sql`AND (c.${tenant} IS NULL OR (SELECT count(*) FROM ${table} r WHERE r.${tenant} = c.${tenant} AND r.lease_owner IS NOT NULL) < ${cap})`;
}

/** The runnable row a claim takes: the kind's waiting status, oldest first, after the highest priority for kinds that have one. */
function candidate<Row extends LeasedRow>(kind: JobKind<Row>, from: string, cap: number, lockClause: RawBuilder<unknown>) {
  const table = sql.table(kind.rows.table);
  const order = kind.claim.order === 'priority' ? sql`c.priority DESC, c.created_at ASC, c.id ASC` : sql`c.created_at ASC, c.id ASC`;
  return sql`
    SELECT c.id FROM ${table} c
    WHERE c.status = ${from} ${underTenantCap(kind, cap)}
    ORDER BY ${order}
    LIMIT 1
    ${lockClause}`;
}

/**
 * How many rows the claims take before `row`, which waits in the kind's claim status: the rows
 * in that status that the claim's order (candidate above) puts first, less those of tenants at
 * their cap, which a claim passes over as well. A priority change or a tenant's job ending can
 * move the row later; this is the queue as it stands now.
 */
export async function claimsAhead<Row extends LeasedRow & { created_at: string }>(kind: QueueFacts<Row>, row: Row, cap: number): Promise<number> {
  const { from } = onlyEdge(kind.rows.lifecycle, kind.claim.transition);
  const table = sql.table(kind.rows.table);
  const older = sql`(c.created_at < ${row.created_at} OR (c.created_at = ${row.created_at} AND c.id < ${row.id}))`;
  const priority = (row as { priority?: number }).priority ?? 0;
  const before = kind.claim.order === 'priority' ? sql`(c.priority > ${priority} OR (c.priority = ${priority} AND ${older}))` : older;
  const { rows } = await sql<{ ahead: number | string }>`
    SELECT count(*) AS ahead FROM ${table} c
    WHERE c.status = ${from} AND ${before} ${underTenantCap(kind, cap)}`.execute(kind.rows.db);
  // Postgres counts in bigint, which node-postgres hands over as a string.
  return Number(rows[0].ahead);
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

/** Jobs of the kind's table that a tenant holds a lease on: what the tenant cap counts. */
export async function leasedByTenant<Row extends LeasedRow>(kind: QueueFacts<Row>, tenantId: string): Promise<number> {
  const column = kind.claim.tenantColumn;
  if (!column) return 0;
  const { rows } = await sql<{ held: number | string }>`
    SELECT count(*) AS held FROM ${sql.table(kind.rows.table)}
    WHERE ${sql.ref(column)} = ${tenantId} AND lease_owner IS NOT NULL`.execute(kind.rows.db);
  return Number(rows[0].held);
}
