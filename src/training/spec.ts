import { taskPaths } from '../domain/task-folder.js';
import type { Slot } from '../engine/job-kind.js';
import type { TrainingTaskRow } from '../store/db.js';

export const TRAINER_SPEC_VERSION = 1;
export const TINY_MODEL = 'builtin:tiny-flux';

/** The tiny model trains at a size a laptop CPU turns over in well under a second a step. */
function resolutionFor(baseModel: string): number[] {
  return baseModel === TINY_MODEL ? [64] : [512, 768, 1024];
}

/** The trainer's JSON spec (kiln_trainer/spec.py TrainSpec) for one task on one slot; `initLora`: the LoRA it continues from. */
export function trainerSpec(task: TrainingTaskRow, slot: Slot, initLora?: string) {
  const paths = taskPaths(task.training_folder);
  return {
    version: TRAINER_SPEC_VERSION,
    training_type: task.training_type,
    trigger_word: task.trigger_word,
    rank: task.rank,
    steps: task.steps,
    learning_rate: task.learning_rate,
    batch_size: task.batch_size,
    gradient_accumulation: task.gradient_accumulation,
    optimizer: task.optimizer,
    save_every: task.save_every,
    max_step_saves_to_keep: task.max_step_saves_to_keep,
    sample_every: task.sample_every,
    sample_steps: task.sample_steps,
    sample_prompts: JSON.parse(task.sample_prompts) as string[],
    base_model_path: task.base_model_path,
    bypass_guidance_embedding: Boolean(task.bypass_guidance_embedding),
    dataset_dir: task.processed_dataset_path ?? paths.dataset,
    work_dir: paths.root,
    resolution: resolutionFor(task.base_model_path),
    device: slot.kind === 'gpu' ? 'cuda' : 'cpu',
    // A LoRA checkpoints only the blocks its card needs (memory.py's plan): on an H200 that made
    // a 1024 px step 0.70 s instead of 0.96 s, and the plan's bf16 peaks came within 2% of the
    // measured ones (docs/benchmarks.md). FULL keeps every block until its plan is measured too.
    gradient_checkpointing: task.training_type === 'LORA' ? 'auto' : true,
    resume: true,
    ...(initLora ? { init_lora: initLora } : {}),
  };
}
