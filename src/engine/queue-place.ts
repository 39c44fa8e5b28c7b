import { onlyEdge } from '../domain/lifecycle.js';
import { estimateTrainingSeconds } from '../domain/estimate.js';
import type { QueuePlace } from '../domain/schemas/queue.js';
import { recentTrainingRuns } from '../store/stage-runs.js';
import type { GenerationRow, TrainingTaskRow } from '../store/db.js';
import type { GenerationStore } from '../store/generations.js';
import type { TaskStore } from '../store/tasks.js';
import { claimsAhead, leasedByTenant } from './claim.js';
import { CLAIMS } from './kinds.js';

const TASK_STAGES = ['preprocess', 'train'] as const;

const NOT_WAITING = { waiting_for: null, position: null, tenant_running: null, tenant_cap: null, estimated_training_seconds: null, held_by_tenant_cap: false } as const;

/**
 * A training task's place: among the tasks waiting for the same stage, and for training also
 * behind every waiting generation, since a worker's accelerator slots take generations first
 * (decision 0003).
 */
export async function taskQueuePlace(tasks: TaskStore, generations: GenerationStore, row: TrainingTaskRow, cap: number): Promise<QueuePlace> {
  // The stage whose claim takes rows in this status, if any.
  const waitingFor = TASK_STAGES.find((stage) => onlyEdge(tasks.lifecycle, CLAIMS[stage].transition).from === row.status) ?? null;
  if (!waitingFor) return { status: row.status, ...NOT_WAITING };
  const kind = { rows: tasks, claim: CLAIMS[waitingFor] };
  const [tasksAhead, generationsAhead, tenantRunning, runs] = await Promise.all([
    claimsAhead(kind, row, cap),
    waitingFor === 'train' ? generations.countWaiting() : 0,
    row.origin_tenant_id === null ? null : leasedByTenant(kind, row.origin_tenant_id),
    recentTrainingRuns(tasks.db, row.base_model_path),
  ]);
  return {
    status: row.status,
    waiting_for: waitingFor,
    position: tasksAhead + generationsAhead,
    tenant_running: tenantRunning,
    tenant_cap: cap > 0 && tenantRunning !== null ? cap : null,
    estimated_training_seconds: estimateTrainingSeconds(runs, row.steps),
    held_by_tenant_cap: cap > 0 && tenantRunning !== null && tenantRunning >= cap,
  };
}

/** A generation's place among the generations waiting, which the workers take oldest first. */
export async function generationQueuePlace(generations: GenerationStore, row: GenerationRow): Promise<QueuePlace> {
  if (row.status !== onlyEdge(generations.lifecycle, CLAIMS.generate.transition).from) return { status: row.status, ...NOT_WAITING };
  const position = await claimsAhead({ rows: generations, claim: CLAIMS.generate }, row, 0);
  return { status: row.status, waiting_for: 'generate', position, tenant_running: null, tenant_cap: null, estimated_training_seconds: null, held_by_tenant_cap: false };
}
