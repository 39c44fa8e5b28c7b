import type { Usage } from '../../domain/schemas/usage.js';
import type { Command } from '../commands.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, KilnClient, runClient } from './http.js';
import { table } from './list.js';

const usage = `Usage: kiln usage [--since TIME] [--until TIME] [--json]

Slot time of your jobs (an admin token: every tenant's) by job kind and slot kind.
  --since TIME  start of the period, RFC 3339 (default: the first of this month, UTC)
  --until TIME  end of the period, exclusive (default: now)
  --json        print the report as the API returns it
${CONNECTION_USAGE}`;

export const usageCommand: Command = {
  usage,
  options: { since: { type: 'string' }, until: { type: 'string' }, json: { type: 'boolean', default: false }, ...CONNECTION_OPTIONS },
  run: (values) =>
    runClient('usage', usage, async () => {
      const query = new URLSearchParams();
      for (const name of ['since', 'until'] as const) if (typeof values[name] === 'string') query.set(name, values[name]);
      const report = await KilnClient.fromOptions(values).json<Usage>('GET', `/api/v1/usage/?${query}`);
      if (values.json) {
        console.log(JSON.stringify(report, null, 2));
        return 0;
      }
      console.log(`from ${report.since} until ${report.until}`);
      const { allowance } = report;
      if (allowance) console.log(`allowance: ${allowance.used_hours.toFixed(2)} of ${allowance.hours} training hours used this month; it renews at ${allowance.renews_at}`);
      if (report.usage.length === 0) {
        console.log('nothing ran');
        return 0;
      }
      const header = ['TENANT', 'JOB', 'SLOT', 'RUNS', 'HOURS'];
      const rows = report.usage.map((l) => [l.tenant_id ?? '-', l.job, l.slot, String(l.runs), (l.seconds / 3600).toFixed(3)]);
      console.log(table([header, ...rows]));
      return 0;
    }),
};
