import type { EntityErasure } from '../../domain/schemas/entities.js';
import type { Command } from '../commands.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, KilnClient, numberOption, runClient, UsageError } from './http.js';
import { plural } from '../../util/words.js';

const usage = `Usage: kiln erase <entity-id> [--timeout SECONDS] [--json]

Erases everything Kiln holds of an entity (a person, a product), as for a deletion request:
its training tasks with their photos, datasets, checkpoints, weights, samples and logs, the
uploads they were made from, and every generation that used one of its LoRAs. Running work is
cancelled first; the command asks again until the workers have let it go.
  --timeout S   give up waiting for running work to stop after S seconds (default 120)
  --json        print the server's last answer
${CONNECTION_USAGE}`;

const AGAIN_MS = 2000;

export const eraseCommand: Command = {
  usage,
  options: { ...CONNECTION_OPTIONS, timeout: { type: 'string' }, json: { type: 'boolean', default: false } },
  run: (values, positionals) =>
    runClient('erase', usage, async () => {
      if (positionals.length !== 1) throw new UsageError('give exactly one entity id');
      const client = KilnClient.fromOptions(values);
      const deadline = Date.now() + (numberOption(values, 'timeout') ?? 120) * 1000;
      const erased = { tasks: 0, generations: 0, uploads: 0 };
      for (;;) {
        const answer = await client.json<EntityErasure>('DELETE', `/api/v1/entities/${positionals[0]}`);
        erased.tasks += answer.deleted_tasks.length;
        erased.generations += answer.deleted_generations.length;
        erased.uploads += answer.deleted_uploads;
        const waitMore = answer.stopping.length > 0 && answer.blocked.length === 0 && Date.now() + AGAIN_MS < deadline;
        if (!waitMore) {
          if (values.json) console.log(JSON.stringify(answer, null, 2));
          else console.log(`erased ${plural(erased.tasks, 'task')}, ${plural(erased.generations, 'generation')} and ${plural(erased.uploads, 'upload')} of ${answer.entity_id}`);
          for (const { id, reason } of answer.blocked) console.error(`${id} not erased: ${reason}`);
          if (answer.stopping.length) console.error(`still stopping on their workers, run again to erase them: ${answer.stopping.join(', ')}`);
          return answer.complete ? 0 : 1;
        }
        await new Promise((r) => setTimeout(r, AGAIN_MS));
      }
    }),
};
