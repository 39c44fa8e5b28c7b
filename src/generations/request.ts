import path from 'node:path';

/** The request as stored: what the API validated, with each LoRA resolved to its weights file. */
export interface GenerationRequest {
  prompt: string;
  loras: { training_task_id: string; scale: number; weights_path: string }[];
  width: number | null;
  height: number | null;
  steps: number | null;
  guidance_scale: number;
  seed: number;
  num_images: number;
}

/** KILN_DATA_DIR/generations/<id>/: spec.json, generate.log, events.jsonl and images/. */
export function generationPaths(dataDir: string, id: string) {
  const root = path.join(dataDir, 'generations', id);
  return { root, images: path.join(root, 'images'), spec: path.join(root, 'spec.json'), log: path.join(root, 'generate.log'), events: path.join(root, 'events.jsonl') };
}
