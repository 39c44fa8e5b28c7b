import { GENERATION_LIFECYCLE, type GenerationTransition } from '../domain/lifecycle.js';
import type { GenerationRow, Store } from './db.js';
import { LifecycleStore } from './lifecycle-store.js';

/** The generation table under the generation lifecycle. */
export class GenerationStore extends LifecycleStore<GenerationRow, GenerationTransition> {
  constructor(store: Store) {
    super(store, 'generations', GENERATION_LIFECYCLE, 'tenant_id');
  }
}
