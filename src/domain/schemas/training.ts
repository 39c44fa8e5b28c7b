import { Type, type Static } from '@sinclair/typebox';
import { TRAINING_STATUSES } from '../lifecycle.js';
import { IntEnum, Nullable, StringEnum } from './types.js';

/** Values of the seed's enums, as the architecture notes fix them. */
export const TRAINING_TYPES = ['LORA', 'FULL'] as const;
export const ENTITY_TYPES = ['PRODUCT', 'SUBJECT', 'STYLE'] as const;
export const CAPTIONING_STRATEGIES = ['trigger_only', 'template', 'provided', 'vlm'] as const;
export const TASK_PRIORITIES = [0, 1, 2, 3] as const;

export const TrainingType = StringEnum(TRAINING_TYPES, { $id: 'TrainingType', title: 'TrainingType' });
export const EntityType = StringEnum(ENTITY_TYPES, { $id: 'EntityType', title: 'EntityType' });
export const TrainingStatus = StringEnum(TRAINING_STATUSES, { $id: 'TrainingStatus', title: 'TrainingStatus' });
export const CaptioningStrategy = StringEnum(CAPTIONING_STRATEGIES, { $id: 'CaptioningStrategy', title: 'CaptioningStrategy' });
export type EntityType = (typeof ENTITY_TYPES)[number];
export type CaptionStrategy = (typeof CAPTIONING_STRATEGIES)[number];
export const TaskPriority = IntEnum(TASK_PRIORITIES, {
  $id: 'TaskPriority',
  title: 'TaskPriority',
  description: '0 LOW, 1 NORMAL, 2 HIGH, 3 URGENT',
});

/** The seed's defaults, one place: create-time defaults and response defaults both read them. */
export const DEFAULTS = {
  training_type: 'LORA',
  entity_type: 'PRODUCT',
  rank: 16,
  steps: 1000,
  learning_rate: 0.0001,
  sample_prompts: [] as string[],
  source_images: [] as string[],
  base_model_path: 'black-forest-labs/FLUX.1-dev',
  bypass_guidance_embedding: false,
  origin_instance: 'unknown',
  preprocessing_captioning_strategy: 'trigger_only',
  save_every: 2000,
  max_step_saves_to_keep: 4,
  batch_size: 1,
  gradient_accumulation: 1,
  optimizer: 'adamw8bit',
  sample_every: 250,
  sample_steps: 25,
  priority: 1,
} as const;

export const OPTIMIZERS = ['adamw8bit', 'adamw', 'adafactor', 'prodigy'] as const;

const desc = {
  origin_instance: "Identifier for the instance that created this task (e.g., 'production', 'staging')",
  origin_zone: "Environment identifier (e.g., 'eu', 'us')",
  origin_version: 'Version of the backend that created this task',
  origin_tenant_id: 'Optional tenant/organization identifier for multi-tenant setups',
  preprocessing_transforms: 'List of image transformations to apply',
  preprocessing_captioning_strategy: 'Strategy for image captioning',
  preprocessing_captioning_prompt: 'Custom prompt for captioning',
  webhook_url: 'Kiln: an http(s) URL on a public address; empty or null means no webhook',
};

const Uuid = Type.String({ format: 'uuid' });
const Transforms = Type.Array(Type.Object({}, { additionalProperties: true }));

/**
 * The seed's TrainingTaskCreate, plus optional Kiln fields (marked "Kiln:") that the seed
 * fixed server-side. Limits are what a user would expect; each violation is a 422.
 */
export const TrainingTaskCreate = Type.Object(
  {
    training_type: Type.Optional(Type.Ref(TrainingType, { default: DEFAULTS.training_type })),
    entity_type: Type.Optional(Type.Ref(EntityType, { default: DEFAULTS.entity_type })),
    entity_id: Type.Optional(Nullable(Uuid, { title: 'Entity Id' })),
    trigger_word: Type.String({
      title: 'Trigger Word',
      minLength: 1,
      maxLength: 64,
      // Printable characters, at least one of them not a space: a blank trigger would caption every photo with nothing.
      pattern: '^[\\x20-\\x7E\\u00A0-\\uFFFF]*[\\x21-\\x7E\\u00A1-\\uFFFF][\\x20-\\x7E\\u00A0-\\uFFFF]*$',
    }),
    rank: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 256 }), { title: 'Rank', default: DEFAULTS.rank })),
    steps: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 100000 }), { title: 'Steps', default: DEFAULTS.steps })),
    learning_rate: Type.Optional(Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 1 }), { title: 'Learning Rate', default: DEFAULTS.learning_rate })),
    sample_prompts: Type.Optional(Nullable(Type.Array(Type.String({ maxLength: 2000 }), { maxItems: 50 }), { title: 'Sample Prompts', default: [] })),
    source_images: Type.Optional(
      Nullable(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: 1000 }), {
        title: 'Source Images',
        description: 'Default []. Each entry: an http(s) URL, a path under KILN_SOURCE_ROOTS, a data: URI, an upload:// reference, or a .zip of any of these.',
      }),
    ),
    base_model_path: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 1024 }), { title: 'Base Model Path', default: DEFAULTS.base_model_path })),
    bypass_guidance_embedding: Type.Optional(Nullable(Type.Boolean(), { title: 'Bypass Guidance Embedding', default: false })),
    webhook_url: Type.Optional(Nullable(Type.String({ maxLength: 2048, format: 'uri' }), { title: 'Webhook Url', description: desc.webhook_url })),
    origin_instance: Type.Optional(Nullable(Type.String({ maxLength: 255 }), { title: 'Origin Instance', description: desc.origin_instance, default: 'unknown' })),
    origin_zone: Type.Optional(Nullable(Type.String({ maxLength: 255 }), { title: 'Origin Zone', description: desc.origin_zone })),
    origin_version: Type.Optional(Nullable(Type.String({ maxLength: 255 }), { title: 'Origin Version', description: desc.origin_version })),
    origin_tenant_id: Type.Optional(Nullable(Type.String({ maxLength: 255 }), { title: 'Origin Tenant Id', description: desc.origin_tenant_id })),
    preprocessing_transforms: Type.Optional(Nullable(Transforms, { title: 'Preprocessing Transforms', description: desc.preprocessing_transforms })),
    preprocessing_captioning_strategy: Type.Optional(
      Nullable(CaptioningStrategy, {
        description: desc.preprocessing_captioning_strategy,
        default: DEFAULTS.preprocessing_captioning_strategy,
      }),
    ),
    preprocessing_captioning_prompt: Type.Optional(
      Nullable(Type.String({ maxLength: 2000 }), {
        title: 'Preprocessing Captioning Prompt',
        description: desc.preprocessing_captioning_prompt,
      }),
    ),
    save_every: Type.Optional(Type.Integer({ minimum: 1, description: 'Kiln: checkpoint every N steps', default: DEFAULTS.save_every })),
    max_step_saves_to_keep: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Kiln: checkpoints kept', default: 4 })),
    batch_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'Kiln', default: 1 })),
    gradient_accumulation: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'Kiln', default: 1 })),
    optimizer: Type.Optional(StringEnum(OPTIMIZERS, { description: 'Kiln', default: DEFAULTS.optimizer })),
    sample_every: Type.Optional(Type.Integer({ minimum: 1, description: 'Kiln: sample every N steps', default: DEFAULTS.sample_every })),
    sample_steps: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, description: 'Kiln: denoising steps per sample', default: 25 })),
    priority: Type.Optional(Type.Ref(TaskPriority, { description: 'Kiln: needs the training:admin scope', default: 1 })),
    init_lora_task_id: Type.Optional(
      Nullable(Uuid, {
        title: 'Init Lora Task Id',
        description: "Kiln: continue from this COMPLETED LoRA task's weights (same base model and rank); this task's steps go on from where that one ended",
      }),
    ),
  },
  { $id: 'TrainingTaskCreate', title: 'TrainingTaskCreate', description: 'Schema for creating new training tasks' },
);
export type TrainingTaskCreate = Static<typeof TrainingTaskCreate>;

const DateTime = Type.String({ format: 'date-time' });

/** The seed's TrainingTask, field for field and in the seed's order. */
export const TrainingTask = Type.Object(
  {
    id: Uuid,
    created_at: DateTime,
    updated_at: DateTime,
    origin_instance: Type.String({ description: desc.origin_instance, default: 'unknown' }),
    origin_zone: Nullable(Type.String(), { description: desc.origin_zone }),
    origin_version: Nullable(Type.String(), { description: desc.origin_version }),
    origin_tenant_id: Nullable(Type.String(), { description: desc.origin_tenant_id }),
    training_type: Type.Ref(TrainingType, { default: 'LORA' }),
    entity_type: Type.Ref(EntityType, { default: 'PRODUCT' }),
    entity_id: Nullable(Uuid),
    status: Type.Ref(TrainingStatus, { default: 'PENDING' }),
    progress: Type.Number({ default: 0 }),
    current_step: Type.Integer({ default: 0 }),
    total_steps: Type.Integer({ default: 1000 }),
    eta_seconds: Nullable(Type.Integer()),
    trigger_word: Type.String(),
    training_folder: Type.String({ default: '' }),
    rank: Type.Integer({ default: 16 }),
    save_every: Type.Integer({ default: 2000 }),
    max_step_saves_to_keep: Type.Integer({ default: 4 }),
    batch_size: Type.Integer({ default: 1 }),
    steps: Type.Integer({ default: 1000 }),
    learning_rate: Type.Number({ default: 0.0001 }),
    gradient_accumulation: Type.Integer({ default: 1 }),
    optimizer: Type.String({ default: 'adamw8bit' }),
    bypass_guidance_embedding: Type.Boolean({ default: false }),
    base_model_path: Type.String({ default: DEFAULTS.base_model_path }),
    local_model_path: Nullable(Type.String()),
    sample_every: Type.Integer({ default: 250 }),
    sample_steps: Type.Integer({ default: 25 }),
    sample_prompts: Type.Array(Type.String()),
    started_at: Nullable(DateTime),
    completed_at: Nullable(DateTime),
    logs: Type.String({ default: '' }),
    error_message: Nullable(Type.String()),
    webhook_url: Type.String({ default: '' }),
    celery_training_task_id: Nullable(Type.String()),
    celery_preprocessing_task_id: Nullable(Type.String()),
    celery_chain_task_id: Nullable(Type.String()),
    preprocessing_stage: Nullable(Type.String(), { description: 'Current preprocessing stage (downloading, validating, etc.)' }),
    processed_files_count: Nullable(Type.Integer(), { description: 'Number of files processed during preprocessing' }),
    total_files_count: Nullable(Type.Integer(), { description: 'Total number of files to process' }),
    preprocessing_started_at: Nullable(DateTime, { description: 'When preprocessing phase started' }),
    preprocessing_completed_at: Nullable(DateTime, { description: 'When preprocessing phase completed' }),
    source_images: Type.Array(Type.String(), { description: 'Original image paths from source system' }),
    processed_dataset_path: Nullable(Type.String(), { description: 'Path to the processed dataset on compute server' }),
    preprocessing_transforms: Nullable(Transforms, { description: desc.preprocessing_transforms }),
    preprocessing_captioning_strategy: Type.String({ description: desc.preprocessing_captioning_strategy, default: 'trigger_only' }),
    preprocessing_captioning_prompt: Nullable(Type.String(), { description: desc.preprocessing_captioning_prompt }),
    priority: Type.Ref(TaskPriority, { description: 'Task priority affecting queue position', default: 1 }),
    priority_changed_at: Nullable(DateTime, { description: 'Timestamp of last priority change' }),
    attempt: Type.Integer({ description: 'Kiln: attempt number of the current stage (0 before the first claim)', default: 0 }),
    init_lora_task_id: Nullable(Uuid, { description: 'Kiln: the task whose LoRA this one continues from' }),
    photos_deleted_at: Nullable(DateTime, {
      description:
        'Kiln: when the photos, the dataset made from them and its caches were deleted, leaving the weights, samples and logs (KILN_PHOTO_RETENTION_HOURS, or DELETE …/photos)',
    }),
  },
  { $id: 'TrainingTask', title: 'TrainingTask' },
);
export type TrainingTask = Static<typeof TrainingTask>;

/** A task as a `fields=` list shows it: only the fields named there. */
export const TrainingTaskFields = Type.Partial(TrainingTask, {
  $id: 'TrainingTaskFields',
  title: 'TrainingTaskFields',
  description: 'Kiln: the fields of a TrainingTask that the list named in fields=',
});

/** The seed's list; with `fields=`, each item is a TrainingTaskFields instead. */
export const TrainingTaskList = Type.Array(Type.Union([Type.Ref(TrainingTask), Type.Ref(TrainingTaskFields)]), { title: 'Response List Training Tasks' });

/** A field of TrainingTask, by name; `fields=` narrows a list to some of them. */
export type TaskField = keyof TrainingTask;
/** Every field of TrainingTask, in the seed's order. */
export const TASK_FIELDS = Object.keys(TrainingTask.properties) as TaskField[];

const fieldName = `(?:${TASK_FIELDS.join('|')})`;

/** For an admin, who sees every tenant: one tenant's only. Anyone else sees only their own anyway. */
export const TenantFilter = Type.String({
  minLength: 1,
  maxLength: 255,
  description: "Kiln: only this tenant's (the token's tenant_id claim); for an admin, who otherwise sees every tenant",
});

/**
 * The seed's paging, with its defaults (skip 0, limit 10). Kiln caps a page at 100, and skip
 * at the largest integer a JSON number holds exactly: past it the database refused the offset.
 */
export const LIST_PAGE = { skip: 0, limit: 10, maxLimit: 100, maxSkip: Number.MAX_SAFE_INTEGER } as const;

export const ListQuery = Type.Object({
  skip: Type.Optional(Type.Integer({ minimum: 0, maximum: LIST_PAGE.maxSkip, default: LIST_PAGE.skip })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIST_PAGE.maxLimit, default: LIST_PAGE.limit })),
  status: Type.Optional(Type.Ref(TrainingStatus)),
  entity_id: Type.Optional(Uuid),
  tenant_id: Type.Optional(TenantFilter),
  // The pattern is the whole rule: a name outside TrainingTask is a 422 at query.fields.
  fields: Type.Optional(
    Type.String({
      pattern: `^${fieldName}(?:,${fieldName})*$`,
      description:
        'Kiln: comma-separated TrainingTask fields, e.g. id,status,progress,eta_seconds; each task then holds only those (and the logs are not read unless named). Without it, every field.',
    }),
  ),
});
export type ListQuery = Static<typeof ListQuery>;

export const TaskIdParams = Type.Object({ task_id: Uuid });
export type TaskIdParams = Static<typeof TaskIdParams>;

export const PriorityBody = Type.Object({ priority: Type.Ref(TaskPriority) }, { $id: 'PriorityUpdate', title: 'PriorityUpdate' });
