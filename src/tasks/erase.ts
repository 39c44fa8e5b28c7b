import { scopeOf, type Principal } from '../auth/principal.js';
import type { Config } from '../config.js';
import { GENERATION_LIFECYCLE, isTerminal, type GenerationStatus } from '../domain/lifecycle.js';
import type { EntityErasure } from '../domain/schemas/entities.js';
import type { GenerationsService } from '../generations/service.js';
import { GenerationNotFound } from '../generations/service.js';
import { deleteUploadsOf } from '../preprocess/uploads.js';
import type { GenerationStore } from '../store/generations.js';
import type { TaskStore } from '../store/tasks.js';
import { StillStopping, TaskConflict, TaskNotFound } from './errors.js';
import type { TasksService } from './service.js';

export interface EraseDeps {
  config: Config;
  tasks: TasksService;
  taskStore: TaskStore;
  generations: GenerationsService;
  generationStore: GenerationStore;
}

/**
 * Erases what Kiln holds of one entity (the person or product a platform trains on) within the
 * caller's tenant: its training tasks with their folders and the uploads they were made from,
 * and every generation that used one of its LoRAs, images included, since those show the entity
 * too. Unfinished work is cancelled first. What a worker is still stopping is listed in
 * `stopping`: the same call a few seconds later deletes it, so repeating until `complete` erases
 * everything. An upload another task also names goes as well; a task that already preprocessed
 * it keeps its own copy.
 */
export async function eraseEntity(deps: EraseDeps, principal: Principal, entityId: string): Promise<EntityErasure> {
  const scope = scopeOf(principal);
  const tasks = await deps.taskStore.ofEntity(scope, entityId);
  const generations = await deps.generationStore.usingLoras(
    scope,
    tasks.map((t) => t.id),
  );
  const result: EntityErasure = { entity_id: entityId, complete: false, deleted_tasks: [], deleted_generations: [], deleted_uploads: 0, stopping: [], blocked: [] };

  // Cancelled before anything is deleted: no generation loads a LoRA, no task trains on, meanwhile.
  for (const g of generations) {
    if (!GENERATION_LIFECYCLE.terminal.includes(g.status as GenerationStatus)) await settled(() => deps.generations.cancel(g.id, principal));
  }
  for (const t of tasks) {
    if (!isTerminal(t.status)) await settled(() => deps.tasks.cancel(t.id, principal));
  }

  const remove = async (id: string, work: () => Promise<void>, deleted: string[]): Promise<boolean> => {
    try {
      await work();
      deleted.push(id);
      return true;
    } catch (err) {
      if (err instanceof TaskNotFound || err instanceof GenerationNotFound) return false; // deleted meanwhile by someone else
      if (err instanceof StillStopping) result.stopping.push(id);
      else if (err instanceof TaskConflict) result.blocked.push({ id, reason: err.message });
      else throw err;
      return false;
    }
  };
  // Generations first: a task whose LoRA a generation still holds cannot go before it.
  for (const g of generations) await remove(g.id, () => deps.generations.delete(g.id, principal), result.deleted_generations);
  for (const t of tasks) {
    if (await remove(t.id, () => deps.tasks.delete(t.id, principal), result.deleted_tasks)) {
      result.deleted_uploads += await deleteUploadsOf(deps.config, t.origin_tenant_id, JSON.parse(t.source_images) as string[]);
    }
  }
  result.complete = result.stopping.length === 0 && result.blocked.length === 0;
  return result;
}

/** Cancels, where a conflict means the job finished meanwhile, which the deletes after handle. */
async function settled(cancel: () => Promise<unknown>): Promise<void> {
  try {
    await cancel();
  } catch (err) {
    if (!(err instanceof TaskConflict || err instanceof TaskNotFound || err instanceof GenerationNotFound)) throw err;
  }
}
