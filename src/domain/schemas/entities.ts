import { Type, type Static } from '@sinclair/typebox';

export const EntityIdParams = Type.Object({ entity_id: Type.String({ format: 'uuid' }) });
export type EntityIdParams = Static<typeof EntityIdParams>;

/** What erasing an entity removed, and what is left for a repeat of the call. */
export const EntityErasure = Type.Object(
  {
    entity_id: Type.String({ format: 'uuid' }),
    complete: Type.Boolean({ description: 'Nothing of the entity is left: no task, no generation with its LoRAs' }),
    deleted_tasks: Type.Array(Type.String({ format: 'uuid' }), { description: 'Training tasks deleted with their folders (photos, dataset, checkpoints, weights, samples, logs)' }),
    deleted_generations: Type.Array(Type.String({ format: 'uuid' }), { description: "Generations that used one of the entity's LoRAs, deleted with their images" }),
    deleted_uploads: Type.Integer({ description: 'Uploads the deleted tasks were made from, deleted too' }),
    stopping: Type.Array(Type.String({ format: 'uuid' }), {
      description: 'Tasks and generations cancelled by this call that a worker has yet to let go; erase again in a few seconds to delete them',
    }),
    blocked: Type.Array(Type.Object({ id: Type.String({ format: 'uuid' }), reason: Type.String() }), {
      description: 'What could not be deleted, and why (a task of another entity continues from this one’s LoRA and is still running)',
    }),
  },
  { title: 'EntityErasure' },
);
export type EntityErasure = Static<typeof EntityErasure>;
