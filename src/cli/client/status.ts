import type { TrainingTask } from '../../domain/schemas/training.js';
import type { Command } from '../commands.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, KilnClient, runClient, taskIdArgument } from './http.js';
import { formatEta } from './progress.js';

const usage = `Usage: kiln status <task-id> [--json]

  --json         print the task as the API returns it
${CONNECTION_USAGE}`;

/** The fields a person checks, one per line; the rest is a --json away. */
export function summarize(task: TrainingTask): string {
  const lines: [string, string | null][] = [
    ['id', task.id],
    ['status', task.status],
    ['trigger', task.trigger_word],
    ['type', `${task.training_type} (rank ${task.rank})`],
    ['step', `${task.current_step}/${task.total_steps}`],
    ['progress', `${task.progress.toFixed(1)}%`],
    ['eta', task.eta_seconds === null ? null : formatEta(task.eta_seconds)],
    ['preprocessing', task.preprocessing_stage],
    ['error', task.error_message],
    ['weights', task.local_model_path],
    ['created', task.created_at],
    ['completed', task.completed_at],
  ];
  return lines
    .filter(([, value]) => value !== null && value !== '')
    .map(([label, value]) => `${label.padEnd(14)}${value}`)
    .join('\n');
}

export const statusCommand: Command = {
  usage,
  options: { json: { type: 'boolean', default: false }, ...CONNECTION_OPTIONS },
  run: (values, positionals) =>
    runClient('status', usage, async () => {
      const id = taskIdArgument(positionals);
      const task = await KilnClient.fromOptions(values).json<TrainingTask>('GET', `/api/v1/training/${id}`);
      console.log(values.json ? JSON.stringify(task, null, 2) : summarize(task));
      return 0;
    }),
};
