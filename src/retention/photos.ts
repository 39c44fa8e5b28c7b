import path from 'node:path';
import type { TenantScope } from '../auth/principal.js';
import type { Config } from '../config.js';
import { taskFolder, taskPaths } from '../domain/task-folder.js';
import { entriesOf } from '../preprocess/fs-util.js';
import { deleteUploadsOf } from '../preprocess/uploads.js';
import type { TrainingTaskRow } from '../store/db.js';
import type { RemoveResult } from '../store/lifecycle-store.js';
import type { TaskStore } from '../store/tasks.js';
import { enqueueWebhook } from '../webhooks/outbox.js';
import { discardFolder } from './trash.js';

/**
 * Deletes a finished task's photos and all that was made from them, and keeps what the task
 * made: its weights, checkpoints, samples and logs. The row is marked first (`photos_deleted_at`),
 * so a retry, which would need the photos, is refused from then on; the files go after, and a
 * repeat of the call removes whatever a stopped process left. The uploads the task was made from
 * go too, except those a task still waiting to preprocess names. A task with a webhook_url
 * announces it as `training.photos_deleted`, once.
 */
export async function deleteTaskPhotos(tasks: TaskStore, config: Config, id: string, scope?: TenantScope): Promise<RemoveResult<TrainingTaskRow>> {
  const res = await tasks.markPhotosDeleted(id, scope, (trx, row) => enqueueWebhook(trx, row, 'training.photos_deleted'));
  if (!res.ok) return res;
  await discardPhotos(config.dataDir, taskFolder(config.dataDir, id));
  await deleteUploadsOf(config, res.row.origin_tenant_id, JSON.parse(res.row.source_images) as string[], await tasks.uploadsAwaitingPreprocessing());
  return res;
}

/**
 * The photos as they came (sources/, but for the LoRA a continued task links there), the
 * dataset's images and captions (its manifest.json stays: which files were used, their names,
 * sizes and hashes, not the pictures), and the trainer's cache, whose latents encode the images.
 */
async function discardPhotos(dataDir: string, taskDir: string): Promise<void> {
  const paths = taskPaths(taskDir);
  const keep = new Set([paths.initLora, paths.manifest]);
  for (const folder of [paths.sources, paths.dataset]) {
    for (const name of await entriesOf(folder)) {
      const entry = path.join(folder, name);
      if (!keep.has(entry)) await discardFolder(dataDir, entry);
    }
  }
  await discardFolder(dataDir, paths.cache);
}
