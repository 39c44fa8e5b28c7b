import type { TrainingTaskRow } from '../store/db.js';
import type { Executor, TaskStore } from '../store/tasks.js';
import { toTrainingTask } from '../tasks/view.js';
import { uuidv7 } from '../util/ids.js';
import { isoNow } from '../util/time.js';

export const WEBHOOK_EVENTS = [
  'training.preprocessing',
  'training.started',
  'training.progress',
  'training.completed',
  'training.failed',
  'training.cancelled',
] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** The event a status change announces; changes not listed (a requeue, say) announce nothing. */
const EVENT_OF_STATUS: Record<string, WebhookEvent> = {
  PREPROCESSING: 'training.preprocessing',
  TRAINING: 'training.started',
  COMPLETED: 'training.completed',
  FAILED: 'training.failed',
  CANCELLED: 'training.cancelled',
};

/** Progress events go out at most this often per task. */
export const PROGRESS_INTERVAL_MS = 10_000;

/** Writes one delivery into the outbox, in the caller's transaction when it has one. */
export async function enqueueWebhook(db: Executor, task: TrainingTaskRow, type: WebhookEvent): Promise<void> {
  if (!task.webhook_url) return;
  const now = isoNow();
  const id = `msg_${uuidv7().replace(/-/g, '')}`;
  const payload = JSON.stringify({ type, timestamp: now, data: toTrainingTask(task) });
  await db
    .insertInto('webhook_deliveries')
    .values({ id, task_id: task.id, event_type: type, url: task.webhook_url, payload, status: 'pending', attempts: 0, next_attempt_at: now, last_status_code: null, last_error: null, created_at: now, delivered_at: null })
    .execute();
}

/**
 * Status events join the outbox in the same transaction as the status write, so an event is
 * recorded if and only if the change happened. A first claim announces; a re-claim after a
 * rescue does not announce the same stage twice.
 */
export function installOutbox(tasks: TaskStore): void {
  tasks.onStatusChange(async (trx, before, after) => {
    if (after.status === before.status) return;
    const event = EVENT_OF_STATUS[after.status];
    if (!event) return;
    if ((after.status === 'PREPROCESSING' || after.status === 'TRAINING') && after.attempt > 1) return;
    await enqueueWebhook(trx, after, event);
  });
}

/** Progress throttle per task, kept by the process that runs the stage. */
export class ProgressAnnouncer {
  private last = new Map<string, number>();

  async maybeAnnounce(db: Executor, task: TrainingTaskRow, now = Date.now()): Promise<boolean> {
    const previous = this.last.get(task.id) ?? 0;
    if (now - previous < PROGRESS_INTERVAL_MS) return false;
    this.last.set(task.id, now);
    await enqueueWebhook(db, task, 'training.progress');
    return true;
  }

  forget(taskId: string): void {
    this.last.delete(taskId);
  }
}
