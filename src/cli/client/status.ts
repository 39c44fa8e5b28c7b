import type { QueuePlace } from '../../domain/schemas/queue.js';
import type { TrainingTask } from '../../domain/schemas/training.js';
import type { Command } from '../commands.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, KilnClient, runClient, taskIdArgument } from './http.js';
import { formatEta } from './progress.js';
import { WAITING } from './watch.js';
import { duration, plural } from '../../util/words.js';

const usage = `Usage: kiln status <task-id> [--json]

  --json         print the task as the API returns it
${CONNECTION_USAGE}`;

/** The fields a person checks, one per line; the rest is a --json away. */
export function summarize(task: TrainingTask, place?: QueuePlace): string {
  const lines: [string, string | null][] = [
    ['id', task.id],
    ['status', task.status],
    ['queue', place ? queueLine(place) : null],
    ['trigger', task.trigger_word],
    ['type', `${task.training_type} (rank ${task.rank})`],
    ['step', `${task.current_step}/${task.total_steps}`],
    ['progress', `${task.progress.toFixed(1)}%`],
    ['eta', task.eta_seconds === null ? null : formatEta(task.eta_seconds)],
    ['preprocessing', task.preprocessing_stage],
    ['error', task.error_message],
    ['weights', task.local_model_path],
    ['photos', task.photos_deleted_at === null ? null : `deleted ${task.photos_deleted_at}`],
    ['created', task.created_at],
    ['completed', task.completed_at],
  ];
  return lines
    .filter(([, value]) => value !== null && value !== '')
    .map(([label, value]) => `${label.padEnd(14)}${value}`)
    .join('\n');
}

/** Where a waiting task stands, and why it may wait longer than its position says. */
function queueLine(place: QueuePlace): string | null {
  if (place.position === null) return null;
  const line = `${plural(place.position, 'job')} ahead for ${place.waiting_for}`;
  const held = place.held_by_tenant_cap ? `${line}; your ${place.tenant_running} running stages are at the cap, so it starts when one ends` : line;
  return place.estimated_training_seconds === null ? held : `${held}; training takes about ${duration(place.estimated_training_seconds)}`;
}

export const statusCommand: Command = {
  usage,
  options: { json: { type: 'boolean', default: false }, ...CONNECTION_OPTIONS },
  run: (values, positionals) =>
    runClient('status', usage, async () => {
      const id = taskIdArgument(positionals);
      const client = KilnClient.fromOptions(values);
      const task = await client.json<TrainingTask>('GET', `/api/v1/training/${id}`);
      const place = !values.json && WAITING.has(task.status) ? await client.json<QueuePlace>('GET', `/api/v1/training/${id}/queue`) : undefined;
      console.log(values.json ? JSON.stringify(task, null, 2) : summarize(task, place));
      return 0;
    }),
};
