import type { TenantScope } from '../auth/principal.js';
import { GENERATION_LIFECYCLE, type GenerationTransition } from '../domain/lifecycle.js';
import type { GenerationListQuery } from '../domain/schemas/generations.js';
import { LIST_PAGE } from '../domain/schemas/training.js';
import type { GenerationRow, Store } from './db.js';
import { LifecycleStore, type Executor } from './lifecycle-store.js';

/** The generation table under the generation lifecycle. */
export class GenerationStore extends LifecycleStore<GenerationRow, GenerationTransition> {
  constructor(store: Store) {
    super(store, 'generations', GENERATION_LIFECYCLE, 'tenant_id');
  }

  /** A page of generations, newest first, in the order of the list indexes (migration 0007). */
  list(scope: TenantScope, query: GenerationListQuery): Promise<GenerationRow[]> {
    let q = this.db.selectFrom('generations').selectAll();
    if (!scope.all) q = q.where(this.tenantIs(scope.tenantId));
    if (query.status) q = q.where('status', '=', query.status);
    if (query.training_task_id) q = q.where('request', 'like', namesLora(query.training_task_id));
    if (query.tenant_id !== undefined) q = q.where(this.tenantIs(query.tenant_id));
    return q
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(query.limit ?? LIST_PAGE.limit)
      .offset(query.skip ?? LIST_PAGE.skip)
      .execute();
  }

  /** Generations within the scope that use any of these training tasks' LoRAs. */
  async usingLoras(scope: TenantScope, taskIds: readonly string[]): Promise<Pick<GenerationRow, 'id' | 'status'>[]> {
    if (taskIds.length === 0) return [];
    let q = this.db
      .selectFrom('generations')
      .select(['id', 'status'])
      .where((eb) => eb.or(taskIds.map((id) => eb('request', 'like', namesLora(id)))));
    if (!scope.all) q = q.where(this.tenantIs(scope.tenantId));
    return q.orderBy('created_at').orderBy('id').execute();
  }

  /** Generations waiting for a slot, all of which start before any waiting training stage. */
  async countWaiting(): Promise<number> {
    const { n } = await this.db
      .selectFrom('generations')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('status', 'in', this.waiting)
      .executeTakeFirstOrThrow();
    return Number(n);
  }
}

/**
 * A LIKE pattern for a stored request that uses this training task's LoRA. The request is the
 * JSON the service wrote, so the id appears exactly so; an id is a UUID, free of LIKE's % and _.
 */
function namesLora(taskId: string): string {
  return `%"training_task_id":${JSON.stringify(taskId)}%`;
}

/** A PENDING or RUNNING generation that uses this training task's LoRA, if any. */
export function unfinishedGenerationWithLora(db: Executor, taskId: string): Promise<Pick<GenerationRow, 'id' | 'status'> | undefined> {
  return db
    .selectFrom('generations')
    .select(['id', 'status'])
    .where('status', 'not in', GENERATION_LIFECYCLE.terminal)
    .where('request', 'like', namesLora(taskId))
    .executeTakeFirst();
}
