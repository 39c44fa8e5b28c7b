import type { Command } from '../commands.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, KilnClient, runClient, taskIdArgument } from './http.js';

const FOLLOW_EVERY_MS = 1000;

interface LogChunk {
  next_offset: number;
  size: number;
  text: string;
  complete: boolean;
}

const usage = `Usage: kiln logs <task-id> [-f]

Prints the trainer's log.

  -f, --follow   keep printing new lines until the task has finished
${CONNECTION_USAGE}`;

export const logsCommand: Command = {
  usage,
  options: { follow: { type: 'boolean', short: 'f', default: false }, ...CONNECTION_OPTIONS },
  run: (values, positionals) =>
    runClient('logs', usage, async () => {
      const id = taskIdArgument(positionals);
      const client = KilnClient.fromOptions(values);
      let offset = 0;
      for (;;) {
        const chunk = await client.json<LogChunk>('GET', `/api/v1/training/${id}/logs?offset=${offset}`);
        process.stdout.write(chunk.text);
        offset = chunk.next_offset;
        if (chunk.complete) return 0;
        // The API hands out at most 1 MiB a call: keep reading at once while there is more.
        if (offset < chunk.size) continue;
        if (!values.follow) return 0;
        await new Promise((r) => setTimeout(r, FOLLOW_EVERY_MS));
      }
    }),
};
