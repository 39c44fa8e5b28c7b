import type { GenerationRow, TrainingTaskRow } from '../store/db.js';
import type { GenerationStore } from '../store/generations.js';
import type { TaskStore } from '../store/tasks.js';
import type { JOB_KINDS } from '../domain/schemas/usage.js';
import type { JobHandler, JobKind } from './job-kind.js';

/**
 * The three kinds of job, as queue facts. A worker's accelerator pool claims in the order its
 * kinds are listed, so wiring lists generations before training (decision 0003).
 */

const dropLease = { lease_owner: null, lease_expires_at: null };

/** How each kind's claim picks and marks its rows; the API reads them to tell a job its place in the queue. */
export const CLAIMS = {
  preprocess: {
    transition: 'claim_preprocessing',
    order: 'priority',
    tenantColumn: 'origin_tenant_id',
    startedColumn: 'preprocessing_started_at',
    runIdColumn: 'celery_preprocessing_task_id',
  },
  train: { transition: 'claim_training', order: 'priority', tenantColumn: 'origin_tenant_id', startedColumn: 'started_at', runIdColumn: 'celery_training_task_id' },
  generate: { transition: 'claim', order: 'fifo', tenantColumn: null, startedColumn: 'started_at', runIdColumn: null },
} as const satisfies Record<(typeof JOB_KINDS)[number], JobKind['claim']>;

/** PENDING -> PREPROCESSING: sources to `dataset/`. Finishing queues the task for training, attempts counted afresh. */
export function preprocessKind(tasks: TaskStore, handler: JobHandler<TrainingTaskRow>): JobKind<TrainingTaskRow> {
  return {
    name: 'preprocess',
    pool: 'preprocess',
    rows: tasks,
    claim: CLAIMS.preprocess,
    queuedAt: (row) => row.queued_at,
    finish: {
      transition: 'finish_preprocessing',
      set: (result, now) => ({ ...result, ...dropLease, preprocessing_completed_at: now, preprocessing_stage: null, attempt: 0, queued_at: now }),
    },
    failed: (message) => ({ ...dropLease, error_message: message, eta_seconds: null }),
    released: (now) => ({ ...dropLease, queued_at: now }),
    handler,
  };
}

/** QUEUED -> TRAINING: the trainer process on a GPU or CPU slot. */
export function trainKind(tasks: TaskStore, handler: JobHandler<TrainingTaskRow>): JobKind<TrainingTaskRow> {
  return {
    name: 'train',
    pool: 'accelerator',
    rows: tasks,
    claim: CLAIMS.train,
    queuedAt: (row) => row.queued_at,
    finish: { transition: 'complete', set: (result, now) => ({ ...result, ...dropLease, completed_at: now, progress: 100, eta_seconds: null }) },
    failed: (message) => ({ ...dropLease, error_message: message, eta_seconds: null }),
    released: (now) => ({ ...dropLease, queued_at: now }),
    handler,
  };
}

/** PENDING -> RUNNING: the sampler with LoRAs of finished tasks, on an accelerator slot. */
export function generateKind(generations: GenerationStore, handler: JobHandler<GenerationRow>): JobKind<GenerationRow> {
  return {
    name: 'generate',
    pool: 'accelerator',
    rows: generations,
    claim: CLAIMS.generate,
    queuedAt: (row) => row.created_at,
    finish: { transition: 'complete', set: (result, now) => ({ ...result, ...dropLease, completed_at: now }) },
    failed: (message, now) => ({ ...dropLease, error_message: message, completed_at: now }),
    released: () => ({ ...dropLease }),
    handler,
  };
}
