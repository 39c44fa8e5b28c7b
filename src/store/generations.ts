import { GENERATION_LIFECYCLE, type GenerationTransition } from '../domain/lifecycle.js';
import type { GenerationRow, Store } from './db.js';
import { LifecycleStore, type Executor } from './lifecycle-store.js';

/** The generation table under the generation lifecycle. */
export class GenerationStore extends LifecycleStore<GenerationRow, GenerationTransition> {
  constructor(store: Store) {
    super(store, 'generations', GENERATION_LIFECYCLE, 'tenant_id');
  }
}

/**
 * A PENDING or RUNNING generation that names this training task's LoRA, if any. The request
 * is stored as the JSON the service wrote, so the id appears exactly as matched here.
 */
export function unfinishedGenerationWithLora(db: Executor, taskId: string): Promise<Pick<GenerationRow, 'id' | 'status'> | undefined> {
  return db
    .selectFrom('generations')
    .select(['id', 'status'])
    .where('status', 'not in', GENERATION_LIFECYCLE.terminal)
    .where('request', 'like', `%"training_task_id":${JSON.stringify(taskId)}%`)
    .executeTakeFirst();
}
