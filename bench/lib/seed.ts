import type { Kysely } from 'kysely';
import type { Principal } from '../../src/auth/principal.js';
import type { KilnDatabase, TrainingTaskRow } from '../../src/store/db.js';
import { newTaskRow } from '../../src/tasks/create.js';

export const BENCH_TENANT = 'bench';

/**
 * 62 columns a row: 500 rows stay under SQLite's 32,766 and Postgres' 65,535 bound
 * parameters per statement.
 */
const BATCH = 500;

export interface SeedOptions {
  tenant?: string;
  dataDir: string;
  /** Status of the i-th row; PENDING (the queue's input) when absent. */
  status?: (i: number) => string;
  /** Created-at of the last row; rows are 1 ms apart before it so they sort by index. */
  endMs?: number;
}

/** A realistic history for the API bench: mostly finished tasks, a few running and waiting. */
export function historyStatus(i: number): string {
  const r = i % 20;
  if (r < 14) return 'COMPLETED';
  if (r < 16) return 'FAILED';
  if (r < 17) return 'CANCELLED';
  if (r < 18) return 'TRAINING';
  return 'PENDING';
}

/**
 * Inserts `count` tasks built by the service's own newTaskRow, in one transaction of
 * multi-row INSERTs: ~100k rows in seconds instead of minutes of per-row commits.
 * Returns the ids in insertion (= creation) order.
 */
export async function seedTasks(db: Kysely<KilnDatabase>, count: number, opts: SeedOptions): Promise<string[]> {
  const principal: Principal = { subject: 'bench-seed', tenantId: opts.tenant ?? BENCH_TENANT, admin: false };
  const end = opts.endMs ?? Date.now();
  const ids: string[] = [];
  await db.transaction().execute(async (trx) => {
    for (let start = 0; start < count; start += BATCH) {
      const rows: TrainingTaskRow[] = [];
      for (let i = start; i < Math.min(count, start + BATCH); i++) {
        const row = newTaskRow(
          { trigger_word: `SKU${i}`, sample_prompts: ['a photo of SKU on a table'] },
          { principal, dataDir: opts.dataDir, defaultBaseModel: 'black-forest-labs/FLUX.1-dev', now: end - (count - i) },
        );
        row.status = opts.status?.(i) ?? 'PENDING';
        ids.push(row.id);
        rows.push(row);
      }
      await trx.insertInto('training_tasks').values(rows).execute();
    }
  });
  return ids;
}

export async function countTasks(db: Kysely<KilnDatabase>, where?: { status?: string }): Promise<number> {
  let q = db.selectFrom('training_tasks').select((eb) => eb.fn.countAll<number>().as('n'));
  if (where?.status) q = q.where('status', '=', where.status);
  const { n } = await q.executeTakeFirstOrThrow();
  return Number(n);
}
