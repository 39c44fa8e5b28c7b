import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { sweepUploads } from '../preprocess/index.js';
import type { TaskStore } from '../store/tasks.js';
import { expireKeys, IDEMPOTENCY_KEY_HOURS } from '../store/idempotency.js';
import { isoNow } from '../util/time.js';
import { removeGeneration } from '../generations/service.js';
import type { GenerationStore } from '../store/generations.js';
import { deleteTaskPhotos } from './photos.js';
import { emptyTrash } from './trash.js';

const SWEEP_EVERY_MS = 3_600_000;

/**
 * What an API process keeps tidy in the data dir: at start it finishes deletions a stopped
 * process left in .trash, and then hourly it deletes expired uploads and idempotency keys, and
 * the photos of tasks finished KILN_PHOTO_RETENTION_HOURS ago, and the generations finished
 * KILN_GENERATION_RETENTION_HOURS ago. Several API processes
 * sharing one data dir may all do this; removals of the same folder do not conflict.
 */
export function startHousekeeping(config: Config, tasks: TaskStore, generations: GenerationStore, log: Logger): { stop(): Promise<void> } {
  let stopped = false;
  let inFlight: Promise<void> = Promise.resolve();
  const sweep = async () => {
    try {
      const deleted = await sweepUploads(config, await tasks.uploadsAwaitingPreprocessing());
      if (deleted) log.info({ deleted, retentionHours: config.uploadRetentionHours }, 'deleted expired uploads');
      await expireKeys(tasks.db, isoNow(Date.now() - IDEMPOTENCY_KEY_HOURS * 3_600_000));
      if (config.photoRetentionHours > 0) {
        const due = await tasks.photosDue(isoNow(Date.now() - config.photoRetentionHours * 3_600_000));
        for (const { id } of due) await deleteTaskPhotos(tasks, config, id);
        if (due.length) log.info({ tasks: due.length, retentionHours: config.photoRetentionHours }, 'deleted the photos of finished tasks');
      }
      if (config.generationRetentionHours > 0) {
        const due = await generations.finishedBefore(isoNow(Date.now() - config.generationRetentionHours * 3_600_000));
        for (const { id } of due) await removeGeneration(generations, config.dataDir, id);
        if (due.length) log.info({ generations: due.length, retentionHours: config.generationRetentionHours }, 'deleted finished generations');
      }
    } catch (err) {
      log.error({ err }, 'sweeping expired uploads, idempotency keys, photos and generations failed; trying again in an hour');
    }
  };
  // A sweep reads the database, so none starts once stopping has begun, and stop waits for the one under way.
  const sweepUnlessStopped = () => {
    if (!stopped) inFlight = sweep();
    return inFlight;
  };
  void emptyTrash(config.dataDir)
    .then((cleared) => cleared && log.info({ cleared }, 'finished deletions left in the data dir’s .trash'))
    .catch((err: unknown) => log.error({ err }, 'emptying the data dir’s .trash failed'))
    .then(sweepUnlessStopped);
  const timer = setInterval(() => void sweepUnlessStopped(), SWEEP_EVERY_MS);
  timer.unref();
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
      return inFlight;
    },
  };
}
