import type { Generation } from '../../domain/schemas/generations.js';
import type { Command } from '../commands.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, KilnClient, runClient } from './http.js';
import { PAGE_OPTIONS, pageQuery, table } from './list.js';

const usage = `Usage: kiln generations [--status S] [--lora TASK_ID] [--tenant T] [--limit N] [--skip N] [--json]

  --status S      only generations in this status (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED)
  --lora TASK_ID  only generations that use this training task's LoRA
  --tenant T      only this tenant's generations (for an admin token, which sees every tenant's)
  --limit N       at most N generations (server default 10, at most 100)
  --skip N        skip the first N
  --json          print the generations as the API returns them
${CONNECTION_USAGE}`;

export const generationsCommand: Command = {
  usage,
  options: { ...PAGE_OPTIONS, lora: { type: 'string' }, ...CONNECTION_OPTIONS },
  run: (values) =>
    runClient('generations', usage, async () => {
      const query = pageQuery(values);
      if (typeof values.lora === 'string' && values.lora) query.set('training_task_id', values.lora);
      const generations = await KilnClient.fromOptions(values).json<Generation[]>('GET', `/api/v1/generations/?${query}`);
      if (values.json) {
        console.log(JSON.stringify(generations, null, 2));
        return 0;
      }
      if (generations.length === 0) {
        console.error('no generations');
        return 0;
      }
      const header = ['ID', 'STATUS', 'IMAGES', 'LORAS', 'CREATED', 'PROMPT'];
      const rows = generations.map((g) => [g.id, g.status, String(g.images.length), String(g.loras.length), g.created_at, oneLine(g.prompt)]);
      console.log(table([header, ...rows]));
      return 0;
    }),
};

/** The prompt on one line, cut to fit beside the other columns. */
function oneLine(prompt: string): string {
  const flat = prompt.replace(/\s+/g, ' ').trim();
  return flat.length > 60 ? `${flat.slice(0, 59)}…` : flat;
}
