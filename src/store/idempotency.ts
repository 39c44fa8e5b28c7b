import type { IdempotencyKeyRow } from './db.js';
import type { Executor } from './lifecycle-store.js';
import { isoNow } from '../util/time.js';

/** How long a key is remembered; a key sent again after that creates anew. */
export const IDEMPOTENCY_KEY_HOURS = 24;

/** One create request's Idempotency-Key: whose, for which operation, and a digest of its body. */
export interface IdempotencyKey {
  tenantId: string | null;
  operation: 'create_training_task' | 'create_generation';
  key: string;
  requestSha256: string;
}

/** The key came with a different request than the one that first used it: the API's 422. */
export class IdempotencyKeyReused extends Error {
  constructor(readonly key: string) {
    super('This Idempotency-Key was already used with a different request; use a new key for a new request');
  }
}

export type PriorClaim = Pick<IdempotencyKeyRow, 'resource_id' | 'request_sha256'>;

const where = (k: IdempotencyKey) => ({ tenant: JSON.stringify(k.tenantId), operation: k.operation, key: k.key });

/** The resource an earlier request with this key made, if one did. */
export function findClaim(db: Executor, k: IdempotencyKey): Promise<PriorClaim | undefined> {
  const w = where(k);
  return db
    .selectFrom('idempotency_keys')
    .select(['resource_id', 'request_sha256'])
    .where('tenant', '=', w.tenant)
    .where('operation', '=', w.operation)
    .where('key', '=', w.key)
    .executeTakeFirst();
}

/**
 * Records that this key made `resourceId`, in the transaction that inserts the resource. A
 * concurrent request with the same key makes the insert do nothing (on Postgres it first waits
 * for the other transaction to commit or roll back); the claim that won is returned then, and
 * the caller rolls its own insert back.
 */
export async function claimKey(trx: Executor, k: IdempotencyKey, resourceId: string): Promise<PriorClaim | undefined> {
  const inserted = await trx
    .insertInto('idempotency_keys')
    .values({ ...where(k), request_sha256: k.requestSha256, resource_id: resourceId, created_at: isoNow() })
    .onConflict((oc) => oc.columns(['tenant', 'operation', 'key']).doNothing())
    .executeTakeFirst();
  if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1) return undefined;
  return findClaim(trx, k);
}

/** Keys go with the task or generation they made: sent again, the request creates anew. */
export async function forgetKeysOf(trx: Executor, resourceId: string): Promise<void> {
  await trx.deleteFrom('idempotency_keys').where('resource_id', '=', resourceId).execute();
}

/** Drops keys made before `before` (ISO time); resolves to how many. */
export async function expireKeys(db: Executor, before: string): Promise<number> {
  const res = await db.deleteFrom('idempotency_keys').where('created_at', '<', before).executeTakeFirst();
  return Number(res.numDeletedRows);
}
