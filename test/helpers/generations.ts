import type { GenerationRow } from '../../src/store/db.js';
import type { GenerationStore } from '../../src/store/generations.js';
import { uuidv7 } from '../../src/util/ids.js';
import { isoNow } from '../../src/util/time.js';

/** A generation row as the API would create it (no LoRA, the tiny model), with overrides. */
export async function insertGeneration(generations: GenerationStore, set: Partial<GenerationRow> = {}): Promise<GenerationRow> {
  const now = isoNow();
  return generations.insert({
    id: uuidv7(),
    created_at: now,
    updated_at: now,
    tenant_id: 'acme',
    status: 'PENDING',
    request: JSON.stringify({ prompt: 'a mug', loras: [], width: 64, height: 64, steps: 2, guidance_scale: 3.5, seed: 1, num_images: 1 }),
    base_model_path: 'builtin:tiny-flux',
    images: '[]',
    error_message: null,
    started_at: null,
    completed_at: null,
    attempt: 0,
    lease_owner: null,
    lease_expires_at: null,
    webhook_url: null,
    ...set,
  });
}
