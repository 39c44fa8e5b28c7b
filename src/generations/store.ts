import { sql } from 'kysely';
import type { GenerationRow, Store } from '../store/db.js';
import { isoIn, isoNow } from '../util/time.js';

export const GENERATION_STATUSES = ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'] as const;

/**
 * Claims the oldest pending generation, as the training claim does (engine/claim.ts):
 * SKIP LOCKED on Postgres, an IMMEDIATE transaction on SQLite.
 */
export async function claimGeneration(store: Store, workerId: string, leaseSeconds: number): Promise<GenerationRow | undefined> {
  const now = isoNow();
  const set = sql`status = 'RUNNING', attempt = attempt + 1, lease_owner = ${workerId},
    lease_expires_at = ${isoIn(leaseSeconds * 1000)}, updated_at = ${now}, started_at = COALESCE(started_at, ${now})`;
  const pick = (lock: ReturnType<typeof sql>) => sql`SELECT id FROM generations WHERE status = 'PENDING' ORDER BY created_at, id LIMIT 1 ${lock}`;
  return store.db.transaction().execute(async (trx) => {
    const statement =
      store.dialect === 'postgres'
        ? sql<GenerationRow>`WITH next AS (${pick(sql`FOR UPDATE SKIP LOCKED`)})
            UPDATE generations SET ${set} FROM next WHERE generations.id = next.id RETURNING generations.*`
        : sql<GenerationRow>`UPDATE generations SET ${set} WHERE id = (${pick(sql``)}) AND status = 'PENDING' RETURNING *`;
    return (await statement.execute(trx)).rows[0];
  });
}

/** Writes the outcome while the caller holds the lease; the lease goes with it. */
export async function finishGeneration(store: Store, id: string, workerId: string, set: Partial<GenerationRow>): Promise<boolean> {
  const now = isoNow();
  const res = await store.db
    .updateTable('generations')
    .set({ ...set, updated_at: now, completed_at: now, lease_owner: null, lease_expires_at: null })
    .where('id', '=', id)
    .where('lease_owner', '=', workerId)
    .where('status', '=', 'RUNNING')
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** Gives the lease back; a generation stopped mid-run (shutdown) goes back to PENDING. */
export async function dropGenerationLease(store: Store, id: string, workerId: string): Promise<void> {
  await store.db
    .updateTable('generations')
    .set({ lease_owner: null, lease_expires_at: null, status: sql`CASE WHEN status = 'RUNNING' THEN 'PENDING' ELSE status END` })
    .where('id', '=', id)
    .where('lease_owner', '=', workerId)
    .execute();
}

/** Expired leases: back to PENDING, or FAILED after the last attempt. */
export async function rescueGenerations(store: Store, maxAttempts: number): Promise<number> {
  const now = isoNow();
  const expired = await store.db.selectFrom('generations').selectAll().where('lease_owner', 'is not', null).where('lease_expires_at', '<', now).limit(100).execute();
  for (const g of expired) {
    const giveUp = g.status === 'RUNNING' && g.attempt >= maxAttempts;
    await store.db
      .updateTable('generations')
      .set({
        lease_owner: null,
        lease_expires_at: null,
        updated_at: now,
        ...(g.status === 'RUNNING' ? { status: giveUp ? 'FAILED' : 'PENDING' } : {}),
        ...(giveUp ? { error_message: `The generation lost its worker ${g.attempt} times; giving up (KILN_MAX_ATTEMPTS=${maxAttempts}).` } : {}),
      })
      .where('id', '=', g.id)
      .where('lease_owner', '=', g.lease_owner)
      .where('lease_expires_at', '=', g.lease_expires_at)
      .execute();
  }
  return expired.length;
}
