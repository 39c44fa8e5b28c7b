import type { Principal } from '../auth/principal.js';
import type { Usage } from '../domain/schemas/usage.js';
import { nextMonthStart, quotaRefusal, trainingSeconds } from '../domain/quota.js';
import { monthStart, usageOf } from '../domain/usage.js';
import { runsOverlapping } from '../store/usage.js';
import type { ApiDeps } from './deps.js';
import { HttpError } from './errors.js';

/**
 * Refuses a create with a 429 once the caller's tenant has used its training hours this month:
 * its token's allowance (`kiln_monthly_training_hours`), else KILN_TENANT_MONTHLY_TRAINING_HOURS.
 * Admins are never refused. Retry-After is the wait until the month renews it (decision 0016).
 */
export async function refuseOverAllowance(deps: Pick<ApiDeps, 'config' | 'store'>, principal: Principal): Promise<void> {
  const now = Date.now();
  const allowance = await allowanceOf(deps, principal, now);
  if (!allowance) return;
  const renewsAt = Date.parse(allowance.renews_at);
  const refusal = quotaRefusal(principal.tenantId, allowance.used_hours * 3600, allowance.hours, renewsAt);
  if (refusal) throw new HttpError(429, refusal, { 'retry-after': String(Math.ceil((renewsAt - now) / 1000)) });
}

/** The caller's monthly allowance and this month's use of it; null for an admin or a tenant without one. */
export async function allowanceOf(deps: Pick<ApiDeps, 'config' | 'store'>, principal: Principal, now: number): Promise<NonNullable<Usage['allowance']> | null> {
  if (principal.admin) return null;
  const hours = principal.monthlyTrainingHours ?? (deps.config.tenantMonthlyTrainingHours > 0 ? deps.config.tenantMonthlyTrainingHours : undefined);
  if (hours === undefined) return null;
  const since = monthStart(now);
  const runs = await runsOverlapping(deps.store, { tenantId: principal.tenantId, all: false }, new Date(since).toISOString(), new Date(now).toISOString());
  return { hours, used_hours: trainingSeconds(usageOf(runs, since, now, now)) / 3600, renews_at: new Date(nextMonthStart(now)).toISOString() };
}
