import type { TrainingTask } from '../../domain/schemas/training.js';
import type { Command } from '../commands.js';
import { uploadIdOf } from '../../preprocess/sources.js';
import { ApiError, CONNECTION_OPTIONS, CONNECTION_USAGE, KilnClient, runClient, taskIdArgument, UsageError } from './http.js';

const usage = `Usage: kiln delete <task-id> [--with-uploads | --photos]

Deletes a finished task (COMPLETED, FAILED or CANCELLED) and everything it holds: its copies of
the photos, dataset, checkpoints, weights, samples and logs. Cancel a running task first.
  --with-uploads  also delete the uploads the task was made from (upload://…), which are
                  otherwise kept until they expire (KILN_UPLOAD_RETENTION_HOURS on the server)
  --photos        delete only the photos: the task's copies, its dataset images and caches,
                  and its uploads; keep the task with its weights, samples and logs (it can
                  then not be retried)
${CONNECTION_USAGE}`;

export const deleteCommand: Command = {
  usage,
  options: { ...CONNECTION_OPTIONS, 'with-uploads': { type: 'boolean' }, photos: { type: 'boolean' } },
  run: (values, positionals) =>
    runClient('delete', usage, async () => {
      const id = taskIdArgument(positionals);
      const client = KilnClient.fromOptions(values);
      if (values.photos) {
        if (values['with-uploads']) throw new UsageError('--photos deletes the uploads too; give one of --photos and --with-uploads');
        const task = await client.json<TrainingTask>('DELETE', `/api/v1/training/${id}/photos`);
        console.log(`${id}: photos deleted at ${task.photos_deleted_at}; its weights, samples and logs are kept`);
        return 0;
      }
      // Read before the delete: afterwards the task, and so its list of sources, is gone.
      const task = values['with-uploads'] ? await client.json<TrainingTask>('GET', `/api/v1/training/${id}`) : null;
      await client.request(`/api/v1/training/${id}`, { method: 'DELETE' });
      console.log(`${id} deleted`);
      const uploads = (task?.source_images ?? []).flatMap((s) => uploadIdOf(s) ?? []);
      let gone = 0;
      for (const upload of uploads) {
        try {
          await client.request(`/api/v1/uploads/${upload}`, { method: 'DELETE' });
          gone++;
        } catch (err) {
          // Expired already, or deleted with another task made from the same upload.
          if (!(err instanceof ApiError && err.status === 404)) throw err;
        }
      }
      if (task) console.log(`${gone} of its ${uploads.length} uploads deleted${gone < uploads.length ? '; the others were already gone' : ''}`);
      return 0;
    }),
};
