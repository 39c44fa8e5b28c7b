import { DEFAULTS, type ListQuery, type TaskField, type TrainingTaskCreate } from '../domain/schemas/training.js';
import { scopeOf, type Principal } from '../auth/principal.js';
import type { Config } from '../config.js';
import { taskFolder } from '../domain/task-folder.js';
import type { TrainingTaskRow } from '../store/db.js';
import { unfinishedGenerationWithLora } from '../store/generations.js';
import type { IdempotencyKey } from '../store/idempotency.js';
import { unfinishedTaskContinuing, type TaskStore, type TaskViewRow } from '../store/tasks.js';
import { deleteTaskPhotos } from '../retention/photos.js';
import { discardFolder } from '../retention/trash.js';
import { isoNow } from '../util/time.js';
import { newTaskRow } from './create.js';
import { loraRefusal } from './lora-source.js';
import { NotPermitted, StillStopping, TaskConflict, TaskNotFound } from './errors.js';

/** What the API asks of tasks, in domain terms. */
export class TasksService {
  constructor(
    private readonly tasks: TaskStore,
    private readonly config: Config,
  ) {}

  /** With an Idempotency-Key an earlier create used, the task that create made (`replayed`). */
  async create(body: TrainingTaskCreate, principal: Principal, key?: IdempotencyKey): Promise<{ row: TrainingTaskRow; replayed: boolean }> {
    if (body.priority !== undefined && body.priority !== 1 && !principal.admin) {
      throw new NotPermitted('Setting priority needs the training:admin scope');
    }
    const row = newTaskRow(body, { principal, dataDir: this.config.dataDir, defaultBaseModel: this.config.defaultBaseModel });
    return this.tasks.insertOnce(row, key);
  }

  /**
   * Why this body cannot continue the LoRA its init_lora_task_id names, or null: it must be the
   * caller's own COMPLETED LoRA task, of the same base model and rank, continued by a LoRA task.
   */
  async initLoraProblem(body: TrainingTaskCreate, principal: Principal): Promise<string | null> {
    const id = body.init_lora_task_id;
    if (!id) return null;
    const source = await this.tasks.get(id, scopeOf(principal));
    if (!source) return `training task ${id} not found`;
    const refusal = loraRefusal(source, body.base_model_path ?? this.config.defaultBaseModel, 'continued');
    if (refusal) return refusal;
    if ((body.training_type ?? DEFAULTS.training_type) !== 'LORA') return 'a FULL fine-tune trains the model’s own weights; only a LORA task continues a LoRA';
    const rank = body.rank ?? DEFAULTS.rank;
    if (rank !== source.rank) return `training task ${id} has rank ${source.rank}, not ${rank}: set rank to ${source.rank} to continue it`;
    return null;
  }

  /** The task an earlier create with this key made, checked before a repeat is validated again. */
  replayed(key: IdempotencyKey): Promise<TrainingTaskRow | undefined> {
    return this.tasks.replayed(key);
  }

  async get(id: string, principal: Principal): Promise<TrainingTaskRow> {
    const row = await this.tasks.get(id, scopeOf(principal));
    if (!row) throw new TaskNotFound(id);
    return row;
  }

  list(principal: Principal, query: ListQuery): Promise<TaskViewRow[]> {
    return this.tasks.list(scopeOf(principal), query);
  }

  /** The same page with only some columns read. */
  listFields(principal: Principal, query: ListQuery, fields: readonly TaskField[]): Promise<Partial<TaskViewRow>[]> {
    return this.tasks.list(scopeOf(principal), query, fields);
  }

  /**
   * Cancel answers at once: the record is CANCELLED when this returns. A worker running the
   * task notices and stops it; its lease, and so its slot, stays until the process is gone.
   */
  async cancel(id: string, principal: Principal): Promise<TrainingTaskRow> {
    const res = await this.tasks.transition(id, 'cancel', { scope: scopeOf(principal) });
    if (res.ok) return res.row;
    if (res.reason === 'not_found') throw new TaskNotFound(id);
    if (res.row.status === 'CANCELLED') return res.row;
    throw new TaskConflict(`Task is ${res.row.status} and can no longer be cancelled`);
  }

  /** Admin only: moves a task within the queue; the next claim sees the new order. */
  async setPriority(id: string, priority: number, principal: Principal): Promise<TrainingTaskRow> {
    if (!principal.admin) throw new NotPermitted('Changing priority needs the training:admin scope');
    const now = isoNow();
    const row = await this.tasks.db
      .updateTable('training_tasks')
      .set({ priority, priority_changed_at: now, updated_at: now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new TaskNotFound(id);
    return row;
  }

  /**
   * Deletes a finished task's photos, its dataset and caches, and the uploads it was made from,
   * keeping its weights, samples and logs; repeating it is harmless. A task not finished is a conflict.
   */
  async deletePhotos(id: string, principal: Principal): Promise<TrainingTaskRow> {
    const res = await deleteTaskPhotos(this.tasks, this.config, id, scopeOf(principal));
    if (res.ok) return res.row;
    if (res.reason === 'not_found') throw new TaskNotFound(id);
    if (res.reason === 'unfinished') throw new TaskConflict(`Task is ${res.row.status}; its photos can be deleted once it has finished (cancel it first)`);
    throw new StillStopping('The task is still stopping on its worker; delete its photos again in a few seconds');
  }

  /**
   * Puts a FAILED or CANCELLED task back in the queue. It starts again at preprocessing,
   * which skips the sources it already fetched, and training resumes from its newest
   * checkpoint because the task folder is kept.
   */
  async retry(id: string, principal: Principal): Promise<TrainingTaskRow> {
    const res = await this.tasks.transition(id, 'retry', {
      scope: scopeOf(principal),
      requireNoLease: true,
      set: (_before, now) => ({
        error_message: null,
        completed_at: null,
        eta_seconds: null,
        attempt: 0,
        queued_at: now,
      }),
      // Read after the update, which holds the row: a photo deletion that committed first is seen.
      alongside: async (trx) => {
        const { photos_deleted_at: deleted } = await trx.selectFrom('training_tasks').select('photos_deleted_at').where('id', '=', id).executeTakeFirstOrThrow();
        if (deleted) throw new TaskConflict(`The task's photos were deleted at ${deleted}, so it cannot train again; create a new task with new uploads`);
      },
    });
    if (res.ok) return res.row;
    if (res.reason === 'not_found') throw new TaskNotFound(id);
    if (res.row.lease_owner !== null) throw new TaskConflict('The task is still stopping on its worker; retry in a few seconds');
    throw new TaskConflict(`Only FAILED or CANCELLED tasks can be retried; this one is ${res.row.status}`);
  }

  /**
   * Deletes a finished task: its record and webhook deliveries (its runs stay, for usage), then its folder
   * (photos, dataset, checkpoints, weights, samples, logs). A task still running or stopping
   * is refused (cancel it first), and so is one whose LoRA a waiting or running generation is
   * about to load. A generation that claims the LoRA after this check fails with a message
   * saying the task was deleted.
   */
  async delete(id: string, principal: Principal): Promise<void> {
    const res = await this.tasks.remove(id, {
      scope: scopeOf(principal),
      alongside: async (trx) => {
        const user = await unfinishedGenerationWithLora(trx, id);
        if (user) throw new TaskConflict(`Generation ${user.id} is ${user.status} with this task's LoRA; cancel it or let it finish, then delete the task`);
        const next = await unfinishedTaskContinuing(trx, id);
        if (next) throw new TaskConflict(`Task ${next.id} is ${next.status} and continues from this task's LoRA; cancel it or let it finish, then delete this one`);
      },
    });
    if (!res.ok && res.reason === 'not_found') throw new TaskNotFound(id);
    if (!res.ok && res.reason === 'unfinished') throw new TaskConflict(`Task is ${res.row.status}; cancel it first, then delete it`);
    if (!res.ok) throw new StillStopping('The task is still stopping on its worker; delete it again in a few seconds');
    await discardFolder(this.config.dataDir, taskFolder(this.config.dataDir, id));
  }
}
