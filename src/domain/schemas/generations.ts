import { Type, type Static } from '@sinclair/typebox';
import { GENERATION_STATUSES } from '../lifecycle.js';
import { LIST_PAGE, TenantFilter } from './training.js';
import { Nullable, StringEnum } from './types.js';

export const GenerationCreate = Type.Object(
  {
    prompt: Type.String({ minLength: 1, maxLength: 2000, description: '[trigger] is replaced by the first LoRA’s trigger word' }),
    loras: Type.Optional(
      Type.Array(
        Type.Object({
          training_task_id: Type.String({ format: 'uuid' }),
          scale: Type.Optional(Type.Number({ minimum: -4, maximum: 4, default: 1 })),
        }),
        { maxItems: 8, default: [] },
      ),
    ),
    base_model_path: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Defaults to the first LoRA’s base model' })),
    width: Type.Optional(Type.Integer({ minimum: 64, maximum: 2048, multipleOf: 16 })),
    height: Type.Optional(Type.Integer({ minimum: 64, maximum: 2048, multipleOf: 16 })),
    steps: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    guidance_scale: Type.Optional(Type.Number({ minimum: 0, maximum: 30, default: 3.5 })),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1 })),
    num_images: Type.Optional(Type.Integer({ minimum: 1, maximum: 8, default: 1 })),
    webhook_url: Type.Optional(
      Nullable(Type.String({ maxLength: 2048, format: 'uri' }), {
        title: 'Webhook Url',
        description: 'An http(s) URL on a public address; receives generation.completed and generation.failed, signed as training webhooks are',
      }),
    ),
  },
  { $id: 'GenerationCreate', title: 'GenerationCreate' },
);
export type GenerationCreate = Static<typeof GenerationCreate>;

export const Generation = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    status: StringEnum(GENERATION_STATUSES),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
    started_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    completed_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    base_model_path: Type.String(),
    prompt: Type.String(),
    loras: Type.Array(Type.Object({ training_task_id: Type.String(), scale: Type.Number() })),
    images: Type.Array(Type.String(), { description: 'URLs under this API' }),
    error_message: Type.Union([Type.String(), Type.Null()]),
    webhook_url: Type.Union([Type.String(), Type.Null()]),
    attempt: Type.Integer({ description: 'Runs started so far; a worker lost mid-run starts another' }),
  },
  { $id: 'Generation', title: 'Generation' },
);
export type Generation = Static<typeof Generation>;

export const GenerationList = Type.Array(Type.Ref(Generation), { title: 'Response List Generations' });

/** A page of the caller's generations, newest first: the training list's paging, and what a generation is filtered by. */
export const GenerationListQuery = Type.Object({
  skip: Type.Optional(Type.Integer({ minimum: 0, maximum: LIST_PAGE.maxSkip, default: LIST_PAGE.skip })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIST_PAGE.maxLimit, default: LIST_PAGE.limit })),
  status: Type.Optional(StringEnum(GENERATION_STATUSES)),
  training_task_id: Type.Optional(Type.String({ format: 'uuid', description: 'Only generations that use this training task’s LoRA' })),
  tenant_id: Type.Optional(TenantFilter),
});
export type GenerationListQuery = Static<typeof GenerationListQuery>;
