import type { TenantScope } from '../auth/principal.js';
import type { RunSpan } from '../domain/usage.js';
import type { Store } from './db.js';

/**
 * The runs that held a slot at some time in [since, until), as `overlaps` in domain/usage.ts
 * says. Timestamps are ISO text in one format (decision 0001), so the comparisons are textual
 * and the same on both dialects; `since` and `until` must be written by toISOString.
 */
export function runsOverlapping(store: Store, scope: TenantScope, since: string, until: string): Promise<RunSpan[]> {
  let q = store.db
    .selectFrom('stage_runs')
    .select(['tenant_id', 'stage', 'slot', 'started_at', 'ended_at'])
    .where('started_at', '<', until)
    .where((eb) => eb.or([eb('ended_at', 'is', null), eb('ended_at', '>', since)]));
  if (!scope.all) q = q.where('tenant_id', scope.tenantId === null ? 'is' : '=', scope.tenantId);
  return q.execute();
}
