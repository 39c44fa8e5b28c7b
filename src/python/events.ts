/** What the trainer decided to fit the run on its device; `reason` says it in words. */
export interface MemoryPlan {
  feasible: boolean;
  quantize: 'nf4' | 'int8' | null;
  gradient_checkpointing: boolean;
  checkpointed_blocks: number;
  blocks: number;
  trainable_dtype: 'fp32' | 'bf16';
  estimated_peak_gib: number;
  gpu_memory_gib: number | null;
  reason: string;
}

/** The trainer's stdout protocol (kiln_trainer/events.py): one JSON object per line. */
export type TrainerEvent =
  | {
      type: 'started';
      model: string;
      device: string;
      dtype: string;
      trainable_parameters: number;
      steps: number;
      start_step: number;
      training_type: string;
      optimizer?: string;
      /** SDPA backends left enabled, in torch's order of preference; never 'cudnn'. */
      attention?: string[];
      torch_version?: string;
      cuda_version?: string | null;
      cudnn_version?: number | null;
      /** kiln_trainer/memory.py's plan for this card (or KILN_GPU_MEMORY_GIB). */
      memory_plan?: MemoryPlan;
      images?: number;
      /** How many images train at each base resolution, keyed by px: an image skips a size it would be enlarged to. */
      images_per_resolution?: Record<string, number>;
      quantized_layers?: number;
      compiled?: boolean;
      flat_lora?: boolean;
      /** How updated bf16 trained weights are rounded (FULL where fp32 ones do not fit); null otherwise. */
      weight_rounding?: 'stochastic' | 'nearest' | null;
    }
  | { type: 'step'; step: number; total: number; loss: number | null; lr: number; seconds_per_step: number }
  | { type: 'skipped_step'; step: number; message: string }
  | { type: 'checkpoint'; step: number; path: string }
  | { type: 'sample'; step: number; prompt: string; path: string; seconds?: number }
  | { type: 'completed'; weights_path: string; final_loss: number | null; wall_seconds: number; steps: number }
  | { type: 'cancelled'; step: number }
  | { type: 'error'; kind: string; message: string; where: string }
  | { type: 'image'; path: string; prompt: string; index: number; seed: number }
  | { type: 'caption'; path: string; caption: string }
  | { type: 'log'; message: string };

const TYPES = new Set(['started', 'step', 'skipped_step', 'checkpoint', 'sample', 'completed', 'cancelled', 'error', 'image', 'caption', 'log']);

/** A line of trainer stdout as an event, or null for anything that is not one of ours. */
export function parseEvent(line: string): TrainerEvent | null {
  if (!line.startsWith('{')) return null;
  try {
    const value = JSON.parse(line) as { type?: unknown };
    return typeof value.type === 'string' && TYPES.has(value.type) ? (value as TrainerEvent) : null;
  } catch {
    return null;
  }
}
