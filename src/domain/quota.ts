import type { UsageLine } from './schemas/usage.js';

/** The jobs a monthly training allowance counts: those on the accelerator slots, not preprocessing. */
const COUNTED_JOBS: readonly UsageLine['job'][] = ['train', 'generate'];

/** Seconds of training and generation in these usage lines. */
export function trainingSeconds(lines: readonly UsageLine[]): number {
  return lines.filter((l) => COUNTED_JOBS.includes(l.job)).reduce((sum, l) => sum + l.seconds, 0);
}

/** The first instant of the month after the one `now` falls in, UTC: when an allowance renews. */
export function nextMonthStart(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/**
 * Why a tenant may start no more work this month, or null while it is within its allowance.
 * What was accepted before the allowance ran out runs on: it is stopped by nobody.
 */
export function quotaRefusal(tenantId: string | null, usedSeconds: number, allowanceHours: number, renewsAt: number): string | null {
  if (usedSeconds < allowanceHours * 3600) return null;
  const used = (usedSeconds / 3600).toFixed(2);
  return `Tenant ${tenantId ?? '(none)'} has used ${used} of its ${allowanceHours} training hours this month; new tasks and generations can start from ${new Date(renewsAt).toISOString()}. Work already accepted runs on.`;
}
