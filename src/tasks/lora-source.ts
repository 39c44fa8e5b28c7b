import type { TrainingTaskRow } from '../store/db.js';

/**
 * Why a training task's LoRA cannot be `verb` ("used", "continued") on `base`, or null: it must
 * be COMPLETED, a LoRA rather than a FULL fine-tune, and trained on that base model.
 */
export function loraRefusal(task: TrainingTaskRow, base: string, verb: string): string | null {
  if (task.status !== 'COMPLETED' || !task.local_model_path) return `training task ${task.id} is ${task.status}; only a COMPLETED task's LoRA can be ${verb}`;
  if (task.training_type !== 'LORA') return `training task ${task.id} is a FULL fine-tune, not a LoRA; use its weights as base_model_path`;
  if (task.base_model_path !== base) return `training task ${task.id} was trained on ${task.base_model_path}, not ${base}`;
  return null;
}
