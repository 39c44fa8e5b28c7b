import type { TrainingTask } from '../../domain/schemas/training.js';
import type { Command } from '../commands.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, KilnClient, numberOption, runClient } from './http.js';

const usage = `Usage: kiln list [--status S] [--entity UUID] [--tenant T] [--limit N] [--skip N] [--json]

  --status S     only tasks in this status (PENDING, TRAINING, COMPLETED, …)
  --entity UUID  only the tasks of this entity_id (kiln train --entity-id)
  --tenant T     only this tenant's tasks (for an admin token, which sees every tenant's)
  --limit N      at most N tasks (server default 10, at most 100)
  --skip N       skip the first N
  --json         print the tasks as the API returns them
${CONNECTION_USAGE}`;

/** The options of a list command that pageQuery reads, and --json. */
export const PAGE_OPTIONS = {
  status: { type: 'string' },
  tenant: { type: 'string' },
  limit: { type: 'string' },
  skip: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

/** --limit, --skip, --status and --tenant as a list endpoint's query. */
export function pageQuery(values: Record<string, unknown>): URLSearchParams {
  const query = new URLSearchParams();
  for (const name of ['limit', 'skip']) {
    const n = numberOption(values, name);
    if (n !== undefined) query.set(name, String(n));
  }
  if (typeof values.status === 'string' && values.status) query.set('status', values.status.toUpperCase());
  if (typeof values.tenant === 'string' && values.tenant) query.set('tenant_id', values.tenant);
  return query;
}

/** Plain columns, padded to their widest cell: readable, and still cut-able by awk. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, col) => Math.max(...rows.map((r) => r[col].length)));
  return rows
    .map((r) =>
      r
        .map((cell, col) => cell.padEnd(widths[col]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export const listCommand: Command = {
  usage,
  options: { ...PAGE_OPTIONS, entity: { type: 'string' }, ...CONNECTION_OPTIONS },
  run: (values) =>
    runClient('list', usage, async () => {
      const query = pageQuery(values);
      if (typeof values.entity === 'string' && values.entity) query.set('entity_id', values.entity);
      const tasks = await KilnClient.fromOptions(values).json<TrainingTask[]>('GET', `/api/v1/training/?${query}`);
      if (values.json) {
        console.log(JSON.stringify(tasks, null, 2));
        return 0;
      }
      if (tasks.length === 0) {
        console.error('no tasks');
        return 0;
      }
      const header = ['ID', 'STATUS', 'TRIGGER', 'STEPS', 'PROGRESS', 'CREATED'];
      const rows = tasks.map((t) => [t.id, t.status, t.trigger_word, `${t.current_step}/${t.total_steps}`, `${t.progress.toFixed(1)}%`, t.created_at]);
      console.log(table([header, ...rows]));
      return 0;
    }),
};
