import type { UsageLine } from './schemas/usage.js';

/** One run as usage sees it: whose, what kind of job, on what kind of slot, and when. */
export interface RunSpan {
  tenant_id: string | null;
  stage: string;
  slot: string | null;
  started_at: string;
  ended_at: string | null;
}

/** The first instant of the month `now` falls in, UTC: the default start of a usage period. */
export function monthStart(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** Whether a run held its slot at some time in [since, until): the store's query asks the same. */
export function overlaps(run: RunSpan, since: number, until: number): boolean {
  return Date.parse(run.started_at) < until && (run.ended_at === null || Date.parse(run.ended_at) > since);
}

/**
 * Slot time per tenant, job kind and slot kind within [since, until). A run that crosses an edge
 * of the period counts only its part inside, so consecutive periods add up to the whole; a run
 * still going counts up to `now`. Runs whose job was deleted still count: the run keeps its tenant.
 */
export function usageOf(runs: readonly RunSpan[], since: number, until: number, now: number): UsageLine[] {
  const lines = new Map<string, UsageLine>();
  for (const run of runs) {
    if (!overlaps(run, since, until)) continue;
    const start = Math.max(Date.parse(run.started_at), since);
    const end = Math.min(run.ended_at === null ? now : Date.parse(run.ended_at), until);
    const line: UsageLine = { tenant_id: run.tenant_id, job: run.stage as UsageLine['job'], slot: (run.slot ?? 'unknown') as UsageLine['slot'], runs: 0, seconds: 0 };
    const key = JSON.stringify([line.tenant_id, line.job, line.slot]);
    const sum = lines.get(key) ?? lines.set(key, line).get(key)!;
    sum.runs += 1;
    sum.seconds += Math.max(0, end - start) / 1000;
  }
  const order = (l: UsageLine) => JSON.stringify([l.tenant_id ?? '', l.job, l.slot]);
  return [...lines.values()].map((l) => ({ ...l, seconds: Math.round(l.seconds * 1000) / 1000 })).sort((a, b) => (order(a) < order(b) ? -1 : 1));
}
