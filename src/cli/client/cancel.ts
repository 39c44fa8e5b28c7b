import type { TrainingTask } from '../../domain/schemas/training.js';
import type { Command } from '../commands.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, KilnClient, runClient, taskIdArgument } from './http.js';

const usage = `Usage: kiln cancel <task-id>

Cancels a task; cancelling a cancelled task is a no-op, a finished one is refused.
${CONNECTION_USAGE}`;

export const cancelCommand: Command = {
  usage,
  options: { ...CONNECTION_OPTIONS },
  run: (values, positionals) =>
    runClient('cancel', usage, async () => {
      const id = taskIdArgument(positionals);
      const task = await KilnClient.fromOptions(values).json<TrainingTask>('POST', `/api/v1/training/${id}/cancel`);
      console.log(`${task.id} ${task.status}`);
      return 0;
    }),
};
