import { TASK_FIELDS, type TaskField, type TrainingTask } from '../domain/schemas/training.js';
import type { TaskViewRow } from '../store/tasks.js';

/** Stored values that the API shows converted: a 0/1 column as a boolean, JSON text as JSON. */
const CONVERTED = {
  bypass_guidance_embedding: (v: number): TrainingTask['bypass_guidance_embedding'] => Boolean(v),
  sample_prompts: (v: string) => JSON.parse(v) as TrainingTask['sample_prompts'],
  source_images: (v: string) => JSON.parse(v) as TrainingTask['source_images'],
  preprocessing_transforms: (v: string | null) => (v === null ? null : (JSON.parse(v) as TrainingTask['preprocessing_transforms'])),
} satisfies { [F in TaskField]?: (v: never) => TrainingTask[F] };

/**
 * The stored row as the seed's TrainingTask: JSON columns parsed, engine bookkeeping dropped.
 *
 * Written field by field on purpose: a list page maps 100 rows, and copying a row with rest and
 * spread made objects V8 keeps as dictionaries, which took a quarter of the page's time to build
 * and again to serialize (docs/benchmarks.md). The return type makes the compiler check that
 * every field, and no other, is here.
 */
export function toTrainingTask(row: TaskViewRow): TrainingTask {
  return {
    id: row.id,
    created_at: row.created_at,
    updated_at: row.updated_at,
    origin_instance: row.origin_instance,
    origin_zone: row.origin_zone,
    origin_version: row.origin_version,
    origin_tenant_id: row.origin_tenant_id,
    training_type: row.training_type as TrainingTask['training_type'],
    entity_type: row.entity_type as TrainingTask['entity_type'],
    entity_id: row.entity_id,
    status: row.status as TrainingTask['status'],
    progress: row.progress,
    current_step: row.current_step,
    total_steps: row.total_steps,
    eta_seconds: row.eta_seconds,
    trigger_word: row.trigger_word,
    training_folder: row.training_folder,
    rank: row.rank,
    save_every: row.save_every,
    max_step_saves_to_keep: row.max_step_saves_to_keep,
    batch_size: row.batch_size,
    steps: row.steps,
    learning_rate: row.learning_rate,
    gradient_accumulation: row.gradient_accumulation,
    optimizer: row.optimizer,
    bypass_guidance_embedding: CONVERTED.bypass_guidance_embedding(row.bypass_guidance_embedding),
    base_model_path: row.base_model_path,
    local_model_path: row.local_model_path,
    sample_every: row.sample_every,
    sample_steps: row.sample_steps,
    sample_prompts: CONVERTED.sample_prompts(row.sample_prompts),
    started_at: row.started_at,
    completed_at: row.completed_at,
    logs: row.logs,
    error_message: row.error_message,
    webhook_url: row.webhook_url,
    celery_training_task_id: row.celery_training_task_id,
    celery_preprocessing_task_id: row.celery_preprocessing_task_id,
    celery_chain_task_id: row.celery_chain_task_id,
    preprocessing_stage: row.preprocessing_stage,
    processed_files_count: row.processed_files_count,
    total_files_count: row.total_files_count,
    preprocessing_started_at: row.preprocessing_started_at,
    preprocessing_completed_at: row.preprocessing_completed_at,
    source_images: CONVERTED.source_images(row.source_images),
    processed_dataset_path: row.processed_dataset_path,
    preprocessing_transforms: CONVERTED.preprocessing_transforms(row.preprocessing_transforms),
    preprocessing_captioning_strategy: row.preprocessing_captioning_strategy,
    preprocessing_captioning_prompt: row.preprocessing_captioning_prompt,
    priority: row.priority as TrainingTask['priority'],
    priority_changed_at: row.priority_changed_at,
    attempt: row.attempt,
    init_lora_task_id: row.init_lora_task_id,
    photos_deleted_at: row.photos_deleted_at,
  };
}

/** The names a `fields=` value lists, each once, in the seed's order (the schema has checked them). */
export function parseFields(fields: string): TaskField[] {
  const asked = new Set(fields.split(','));
  return TASK_FIELDS.filter((f) => asked.has(f));
}

/** Some fields of a task, from a row that holds at least those columns, converted as above. */
export function pickTrainingTask(row: Partial<TaskViewRow>, fields: readonly TaskField[]): Partial<TrainingTask> {
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    const convert = (CONVERTED as Partial<Record<TaskField, (v: unknown) => unknown>>)[f];
    out[f] = convert ? convert(row[f]) : row[f];
  }
  return out;
}
