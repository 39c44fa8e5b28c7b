import { taskFolder } from '../domain/task-folder.js';
import { DEFAULTS, type TrainingTaskCreate } from '../domain/schemas/training.js';
import type { Principal } from '../auth/principal.js';
import type { TrainingTaskRow } from '../store/db.js';
import { uuidv7 } from '../util/ids.js';
import { isoNow } from '../util/time.js';

export interface CreateContext {
  principal: Principal;
  dataDir: string;
  defaultBaseModel: string;
  now?: number;
}

/**
 * A new task's row from a validated create body. An explicit null means "the default", as
 * the seed's Optional fields did; the tenant comes from the token unless an admin names one.
 */
export function newTaskRow(body: TrainingTaskCreate, ctx: CreateContext): TrainingTaskRow {
  const now = isoNow(ctx.now);
  const id = uuidv7(ctx.now);
  const steps = body.steps ?? DEFAULTS.steps;
  const tenant = ctx.principal.admin && body.origin_tenant_id ? body.origin_tenant_id : ctx.principal.tenantId;
  return {
    id,
    created_at: now,
    updated_at: now,
    origin_instance: body.origin_instance ?? DEFAULTS.origin_instance,
    origin_zone: body.origin_zone ?? null,
    origin_version: body.origin_version ?? null,
    origin_tenant_id: tenant,
    training_type: body.training_type ?? DEFAULTS.training_type,
    entity_type: body.entity_type ?? DEFAULTS.entity_type,
    entity_id: body.entity_id ?? null,
    status: 'PENDING',
    progress: 0,
    current_step: 0,
    total_steps: steps,
    eta_seconds: null,
    trigger_word: body.trigger_word,
    training_folder: taskFolder(ctx.dataDir, id),
    rank: body.rank ?? DEFAULTS.rank,
    save_every: body.save_every ?? DEFAULTS.save_every,
    max_step_saves_to_keep: body.max_step_saves_to_keep ?? DEFAULTS.max_step_saves_to_keep,
    batch_size: body.batch_size ?? DEFAULTS.batch_size,
    steps,
    learning_rate: body.learning_rate ?? DEFAULTS.learning_rate,
    gradient_accumulation: body.gradient_accumulation ?? DEFAULTS.gradient_accumulation,
    optimizer: body.optimizer ?? DEFAULTS.optimizer,
    bypass_guidance_embedding: body.bypass_guidance_embedding ? 1 : 0,
    base_model_path: body.base_model_path ?? ctx.defaultBaseModel,
    local_model_path: null,
    sample_every: body.sample_every ?? DEFAULTS.sample_every,
    sample_steps: body.sample_steps ?? DEFAULTS.sample_steps,
    sample_prompts: JSON.stringify(body.sample_prompts ?? []),
    started_at: null,
    completed_at: null,
    logs: '',
    error_message: null,
    webhook_url: body.webhook_url ?? '',
    celery_training_task_id: null,
    celery_preprocessing_task_id: null,
    celery_chain_task_id: id,
    preprocessing_stage: null,
    processed_files_count: null,
    total_files_count: null,
    preprocessing_started_at: null,
    preprocessing_completed_at: null,
    source_images: JSON.stringify(body.source_images ?? []),
    processed_dataset_path: null,
    preprocessing_transforms: body.preprocessing_transforms ? JSON.stringify(body.preprocessing_transforms) : null,
    preprocessing_captioning_strategy: body.preprocessing_captioning_strategy ?? DEFAULTS.preprocessing_captioning_strategy,
    preprocessing_captioning_prompt: body.preprocessing_captioning_prompt ?? null,
    priority: body.priority ?? DEFAULTS.priority,
    priority_changed_at: null,
    attempt: 0,
    init_lora_task_id: body.init_lora_task_id ?? null,
    photos_deleted_at: null,
    lease_owner: null,
    lease_expires_at: null,
    queued_at: now,
  };
}
