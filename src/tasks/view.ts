import type { TrainingTask } from '../domain/schemas/training.js';
import type { TrainingTaskRow } from '../store/db.js';

/** The stored row as the seed's TrainingTask: JSON columns parsed, engine bookkeeping dropped. */
export function toTrainingTask(row: TrainingTaskRow): TrainingTask {
  const { lease_owner: _owner, lease_expires_at: _expires, queued_at: _queued, ...fields } = row;
  return {
    ...fields,
    status: row.status as TrainingTask['status'],
    training_type: row.training_type as TrainingTask['training_type'],
    entity_type: row.entity_type as TrainingTask['entity_type'],
    priority: row.priority as TrainingTask['priority'],
    bypass_guidance_embedding: Boolean(row.bypass_guidance_embedding),
    sample_prompts: JSON.parse(row.sample_prompts) as TrainingTask['sample_prompts'],
    source_images: JSON.parse(row.source_images) as TrainingTask['source_images'],
    preprocessing_transforms: row.preprocessing_transforms === null ? null : (JSON.parse(row.preprocessing_transforms) as TrainingTask['preprocessing_transforms']),
  };
}
