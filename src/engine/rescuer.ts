import { onlyEdge } from '../domain/lifecycle.js';
import type { LeasedRow, LifecycleStore } from '../store/lifecycle-store.js';
import { closeAbandonedRuns } from '../store/stage-runs.js';
import { isoNow } from '../util/time.js';
import type { AnyJobKind } from './job-kind.js';

export interface RescueReport {
  requeued: LeasedRow[];
  failed: LeasedRow[];
  /** Leases of rows already terminal (cancelled while their worker died): just cleared. */
  cleared: number;
}

/** How a kind names itself in a give-up message. */
const STAGE_WORDS: Record<AnyJobKind['name'], string> = { preprocess: 'preprocessing stage', train: 'training stage', generate: 'generation' };

/**
 * Returns expired leases to the queue, a batch at a time until none is left. A running job
 * goes back to its waiting status (the next claim counts attempt + 1; training resumes from
 * its newest checkpoint); after `maxAttempts` claims it fails instead, saying why. Each write
 * is conditioned on the very lease it read, so a worker that renews at the last moment wins.
 */
export async function rescueExpired(kinds: AnyJobKind[], maxAttempts: number, batch = 100): Promise<RescueReport> {
  const report: RescueReport = { requeued: [], failed: [], cleared: 0 };
  const tables = [...new Map(kinds.map((k) => [k.rows.table, k.rows])).values()];
  for (const rows of tables) {
    // A row that stays expired (its rescue lost a race) is left for the next round, not retried here.
    const seen = new Set<string>();
    for (;;) {
      const expired = (await rows.db
        .selectFrom(rows.table)
        .select(['id', 'status', 'attempt', 'lease_owner', 'lease_expires_at'])
        .where('lease_owner', 'is not', null)
        .where('lease_expires_at', '<', isoNow())
        .orderBy('lease_expires_at')
        .limit(batch)
        .execute()) as LeasedRow[];
      const fresh = expired.filter((row) => !seen.has(row.id));
      for (const row of fresh) {
        seen.add(row.id);
        await rescueOne(kinds, rows, row, maxAttempts, report);
      }
      if (expired.length < batch || fresh.length === 0) break;
    }
  }
  return report;
}

async function rescueOne<Row extends LeasedRow>(kinds: AnyJobKind[], rows: LifecycleStore<Row, string>, row: LeasedRow, maxAttempts: number, report: RescueReport): Promise<void> {
  const lease = { owner: row.lease_owner!, expires: row.lease_expires_at! };
  const kind = kinds.find((k) => k.rows === rows && onlyEdge(rows.lifecycle, k.claim.transition).to === row.status);
  if (!kind) {
    // Not running (cancelled while its worker died, say): nothing to move, only the lease to
    // clear and the dead worker's run to close, which no one else will (the chaos run found one
    // left open).
    const res = await rows.db
      .updateTable(rows.table)
      .set({ lease_owner: null, lease_expires_at: null })
      .where('id', '=', row.id)
      .where('lease_owner', '=', lease.owner)
      .where('lease_expires_at', '=', lease.expires)
      .executeTakeFirst();
    const cleared = Number(res.numUpdatedRows);
    report.cleared += cleared;
    if (cleared) await closeAbandonedRuns(rows.db, row.id, lease.owner);
    return;
  }
  const giveUp = row.attempt >= maxAttempts;
  const res = await rows.transition(row.id, giveUp ? 'fail' : 'release', {
    leaseOwner: lease.owner,
    leaseExpiresAt: lease.expires,
    set: (before, now) =>
      giveUp
        ? kind.failed(
            `The ${STAGE_WORDS[kind.name]} lost its worker on each of ${before.attempt} attempts (last worker: ${lease.owner}); giving up after KILN_MAX_ATTEMPTS=${maxAttempts}.`,
            now,
          )
        : kind.released(now),
    alongside: (trx) => closeAbandonedRuns(trx, row.id, lease.owner),
  });
  if (!res.ok) return;
  (giveUp ? report.failed : report.requeued).push(res.row);
}
