import type { TrainingTaskRow } from '../store/db.js';
import type { GenerationStore } from '../store/generations.js';
import type { Executor, TaskStore } from '../store/tasks.js';
import { toGeneration } from '../generations/service.js';
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
  'training.photos_deleted',
  'generation.completed',
  'generation.failed',
  'generation.cancelled',
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

/** The event a generation's status change announces. */
const EVENT_OF_GENERATION_STATUS: Record<string, WebhookEvent> = {
  COMPLETED: 'generation.completed',
  FAILED: 'generation.failed',
  CANCELLED: 'generation.cancelled',
};

/**
 * Writes one delivery into the outbox, in the caller's transaction when it has one. The
 * delivery's task_id is the id of the task or generation the event is about.
 */
async function enqueue(db: Executor, subject: { id: string; webhook_url: string | null }, type: WebhookEvent, data: object): Promise<void> {
  if (!subject.webhook_url) return;
  const now = isoNow();
  const id = `msg_${uuidv7().replace(/-/g, '')}`;
  const payload = JSON.stringify({ type, timestamp: now, data });
  await db
    .insertInto('webhook_deliveries')
    .values({
      id,
      task_id: subject.id,
      event_type: type,
      url: subject.webhook_url,
      payload,
      status: 'pending',
      attempts: 0,
      next_attempt_at: now,
      last_status_code: null,
      last_error: null,
      created_at: now,
      delivered_at: null,
    })
    .execute();
}

export function enqueueWebhook(db: Executor, task: TrainingTaskRow, type: WebhookEvent): Promise<void> {
  return enqueue(db, task, type, toTrainingTask(task));
}

/**
 * Status events join the outbox in the same transaction as the status write, so an event is
 * recorded if and only if the change happened. A first claim announces; a re-claim after a
 * rescue does not announce the same stage twice.
 */
export function installOutbox(tasks: TaskStore, generations: GenerationStore): void {
  tasks.onStatusChange(async (trx, before, after) => {
    if (after.status === before.status) return;
    const event = EVENT_OF_STATUS[after.status];
    if (!event) return;
    if ((after.status === 'PREPROCESSING' || after.status === 'TRAINING') && after.attempt > 1) return;
    await enqueueWebhook(trx, after, event);
  });
  // Image URLs in the payload are relative to the API: a worker does not know the public address.
  generations.onStatusChange(async (trx, before, after) => {
    const event = after.status !== before.status && EVENT_OF_GENERATION_STATUS[after.status];
    if (event) await enqueue(trx, after, event, toGeneration(after, ''));
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
