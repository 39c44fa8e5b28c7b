import type { ListQuery } from '../domain/schemas/training.js';
import type { TenantScope } from '../auth/principal.js';
import { TRAINING_LIFECYCLE, type TransitionName } from '../domain/lifecycle.js';
import type { Store, TrainingTaskRow } from './db.js';
import { LifecycleStore } from './lifecycle-store.js';

export type { Executor, StatusListener, TransitionOptions, TransitionResult } from './lifecycle-store.js';

/** The training task table under the training lifecycle. */
export class TaskStore extends LifecycleStore<TrainingTaskRow, TransitionName> {
  constructor(store: Store) {
    super(store, 'training_tasks', TRAINING_LIFECYCLE, 'origin_tenant_id');
  }

  /** Newest first; ties on the millisecond are broken by the time-ordered id. */
  async list(scope: TenantScope, query: ListQuery): Promise<TrainingTaskRow[]> {
    let q = this.db.selectFrom('training_tasks').selectAll();
    if (!scope.all) q = q.where(this.tenantIs(scope.tenantId));
    if (query.status) q = q.where('status', '=', query.status);
    if (query.entity_id) q = q.where('entity_id', '=', query.entity_id);
    return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit).offset(query.skip).execute();
  }
}
