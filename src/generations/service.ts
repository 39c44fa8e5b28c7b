import type { GenerationCreate, Generation, GenerationListQuery } from '../domain/schemas/generations.js';
import type { Principal } from '../auth/principal.js';
import { scopeOf, type TenantScope } from '../auth/principal.js';
import type { RemoveResult } from '../store/lifecycle-store.js';
import type { GenerationRow } from '../store/db.js';
import type { GenerationStore } from '../store/generations.js';
import type { IdempotencyKey } from '../store/idempotency.js';
import type { TaskStore } from '../store/tasks.js';
import { StillStopping, TaskConflict } from '../tasks/errors.js';
import { loraRefusal } from '../tasks/lora-source.js';
import { uuidv7 } from '../util/ids.js';
import { isoNow } from '../util/time.js';
import { discardFolder } from '../retention/trash.js';
import { generationPaths, type GenerationRequest } from './request.js';

/** A request that names LoRAs it cannot use; each problem names the LoRA's index. */
export class GenerationRefused extends Error {
  constructor(readonly problems: { index: number | null; field: string; msg: string }[]) {
    super(problems.map((p) => p.msg).join('; '));
  }
}

export class GenerationNotFound extends Error {
  constructor() {
    super('Generation not found');
  }
}

/** A 409, as for training tasks. */
export class GenerationConflict extends TaskConflict {}

export class GenerationsService {
  constructor(
    private readonly generations: GenerationStore,
    private readonly tasks: TaskStore,
    private readonly dataDir: string,
  ) {}

  /**
   * Checks each LoRA: the caller's own task, COMPLETED, a LoRA (not a full fine-tune), and of
   * the base model the generation runs on. The base defaults to the first LoRA's.
   */
  async create(body: GenerationCreate, principal: Principal, defaultBase: string, key?: IdempotencyKey): Promise<{ row: GenerationRow; replayed: boolean }> {
    const problems: GenerationRefused['problems'] = [];
    const loras: GenerationRequest['loras'] = [];
    let base = body.base_model_path;
    let trigger: string | null = null;
    for (const [index, lora] of (body.loras ?? []).entries()) {
      const task = await this.tasks.get(lora.training_task_id, scopeOf(principal));
      if (!task) {
        problems.push({ index, field: 'training_task_id', msg: `training task ${lora.training_task_id} not found` });
        continue;
      }
      // The first usable LoRA sets the base model (and the trigger word) when the request names none.
      const refusal = loraRefusal(task, base ?? task.base_model_path, 'used');
      if (refusal) {
        problems.push({ index, field: 'training_task_id', msg: refusal });
        continue;
      }
      base ??= task.base_model_path;
      trigger ??= task.trigger_word;
      loras.push({ training_task_id: task.id, scale: lora.scale ?? 1, weights_path: task.local_model_path! });
    }
    if (problems.length) throw new GenerationRefused(problems);
    const now = isoNow();
    const request: GenerationRequest = {
      prompt: trigger ? body.prompt.replaceAll('[trigger]', trigger) : body.prompt,
      loras,
      width: body.width ?? null,
      height: body.height ?? null,
      steps: body.steps ?? null,
      guidance_scale: body.guidance_scale ?? 3.5,
      seed: body.seed ?? Math.floor(Math.random() * 2 ** 31),
      num_images: body.num_images ?? 1,
    };
    return this.generations.insertOnce(
      {
        id: uuidv7(),
        created_at: now,
        updated_at: now,
        tenant_id: principal.tenantId,
        status: 'PENDING',
        request: JSON.stringify(request),
        base_model_path: base ?? defaultBase,
        images: '[]',
        error_message: null,
        started_at: null,
        completed_at: null,
        attempt: 0,
        lease_owner: null,
        lease_expires_at: null,
        webhook_url: body.webhook_url ?? null,
      },
      key,
    );
  }

  /** The generation an earlier create with this key made, checked before a repeat is validated again. */
  replayed(key: IdempotencyKey): Promise<GenerationRow | undefined> {
    return this.generations.replayed(key);
  }

  /** The caller's generations, newest first; an admin's are every tenant's. */
  list(principal: Principal, query: GenerationListQuery): Promise<GenerationRow[]> {
    return this.generations.list(scopeOf(principal), query);
  }

  async get(id: string, principal: Principal): Promise<GenerationRow> {
    const row = await this.generations.get(id, scopeOf(principal));
    if (!row) throw new GenerationNotFound();
    return row;
  }

  /**
   * As for training tasks: the record is CANCELLED when this returns, a worker running it
   * stops its process and keeps the slot until the process is gone. Cancelling a CANCELLED
   * generation returns it unchanged; a COMPLETED or FAILED one is a conflict.
   */
  async cancel(id: string, principal: Principal): Promise<GenerationRow> {
    const res = await this.generations.transition(id, 'cancel', { scope: scopeOf(principal) });
    if (res.ok) return res.row;
    if (res.reason === 'not_found') throw new GenerationNotFound();
    if (res.row.status === 'CANCELLED') return res.row;
    throw new GenerationConflict(`Generation is ${res.row.status} and can no longer be cancelled`);
  }

  /** Puts a FAILED or CANCELLED generation back in the queue, with its seed, so it draws the same images. */
  async retry(id: string, principal: Principal): Promise<GenerationRow> {
    const res = await this.generations.transition(id, 'retry', {
      scope: scopeOf(principal),
      requireNoLease: true,
      set: () => ({ error_message: null, completed_at: null, images: '[]', attempt: 0 }),
    });
    if (res.ok) return res.row;
    if (res.reason === 'not_found') throw new GenerationNotFound();
    if (res.row.lease_owner !== null) throw new GenerationConflict('The generation is still stopping on its worker; retry in a few seconds');
    throw new GenerationConflict(`Only FAILED or CANCELLED generations can be retried; this one is ${res.row.status}`);
  }

  /** Deletes a finished generation, its record and its images; a waiting or running one is a conflict (cancel it first). */
  async delete(id: string, principal: Principal): Promise<void> {
    const res = await removeGeneration(this.generations, this.dataDir, id, scopeOf(principal));
    if (!res.ok && res.reason === 'not_found') throw new GenerationNotFound();
    if (!res.ok && res.reason === 'unfinished') throw new GenerationConflict(`Generation is ${res.row.status}; cancel it first, then delete it`);
    if (!res.ok) throw new StillStopping('The generation is still stopping on its worker; delete it again in a few seconds');
  }
}

/** Deletes a finished generation that no worker holds: its row, then its folder with the images. */
export async function removeGeneration(generations: GenerationStore, dataDir: string, id: string, scope?: TenantScope): Promise<RemoveResult<GenerationRow>> {
  const res = await generations.remove(id, { scope });
  if (res.ok) await discardFolder(dataDir, generationPaths(dataDir, id).root);
  return res;
}

/** The API's view of a row; image URLs are under `baseUrl` (relative when it is empty). */
export function toGeneration(row: GenerationRow, baseUrl: string): Generation {
  const request = JSON.parse(row.request) as GenerationRequest;
  return {
    id: row.id,
    status: row.status as Generation['status'],
    created_at: row.created_at,
    updated_at: row.updated_at,
    started_at: row.started_at,
    completed_at: row.completed_at,
    base_model_path: row.base_model_path,
    prompt: request.prompt,
    loras: request.loras.map((l) => ({ training_task_id: l.training_task_id, scale: l.scale })),
    images: (JSON.parse(row.images) as string[]).map((name) => `${baseUrl}/api/v1/generations/${row.id}/images/${name}`),
    error_message: row.error_message,
    webhook_url: row.webhook_url,
    attempt: row.attempt,
  };
}
