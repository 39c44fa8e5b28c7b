import type { Principal } from '../../src/auth/principal.js';
import type { TrainingTaskRow } from '../../src/store/db.js';
import type { TaskStore } from '../../src/store/tasks.js';
import { newTaskRow } from '../../src/tasks/create.js';

/** Inserts a PENDING task the way the API would, with overrides for the test's situation. */
export async function insertTask(
  tasks: TaskStore,
  opts: { tenant?: string | null; priority?: number; createdAt?: number; set?: Partial<TrainingTaskRow> } = {},
): Promise<TrainingTaskRow> {
  const principal: Principal = { subject: 't', tenantId: opts.tenant === undefined ? 'acme' : opts.tenant, admin: true };
  const row = newTaskRow(
    { trigger_word: 'TOK', priority: (opts.priority ?? 1) as 0 | 1 | 2 | 3, source_images: ['https://example.com/a.jpg'] },
    { principal, dataDir: '/tmp/kiln-unused', defaultBaseModel: 'builtin:tiny-flux', now: opts.createdAt },
  );
  return tasks.insert({ ...row, ...opts.set });
}
