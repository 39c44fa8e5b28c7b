import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import type { Slot } from '../engine/stages.js';
import type { GenerationRow, Store } from '../store/db.js';
import { supervise } from '../training/supervisor.js';
import { trainerEnv } from '../training/spec.js';
import { CANCEL_GRACE_MS } from '../training/stage.js';
import { renewLease } from '../engine/leases.js';
import { claimGeneration, dropGenerationLease, finishGeneration, rescueGenerations } from './store.js';

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

export function generationDir(config: Config, id: string): string {
  return path.join(config.dataDir, 'generations', id);
}

/** Work that shares the training slots with training stages; the worker claims it first. */
export interface SlotJob {
  id: string;
  run(slot: Slot, signal: AbortSignal): Promise<void>;
}

export interface SlotJobSource {
  claim(workerId: string, leaseSeconds: number): Promise<SlotJob | undefined>;
  renew(id: string, workerId: string, leaseSeconds: number): Promise<boolean>;
  release(id: string, workerId: string): Promise<void>;
  cancelledAmong(ids: string[]): Promise<string[]>;
  rescue(maxAttempts: number): Promise<void>;
}

/** Generations as slot jobs: claim, run `kiln_trainer generate`, record images or the error. */
export function generationJobs(store: Store, config: Config): SlotJobSource {
  return {
    async claim(workerId, leaseSeconds) {
      const row = await claimGeneration(store, workerId, leaseSeconds);
      return row && { id: row.id, run: (slot, signal) => runGeneration(store, config, row, workerId, slot, signal) };
    },
    renew: (id, workerId, leaseSeconds) => renewLease(store, id, workerId, leaseSeconds, 'generations'),
    release: (id, workerId) => dropGenerationLease(store, id, workerId),
    async cancelledAmong(ids) {
      if (!ids.length) return [];
      const rows = await store.db.selectFrom('generations').select('id').where('id', 'in', ids).where('status', '=', 'CANCELLED').execute();
      return rows.map((r) => r.id);
    },
    rescue: async (maxAttempts) => void (await rescueGenerations(store, maxAttempts)),
  };
}

async function runGeneration(store: Store, config: Config, row: GenerationRow, workerId: string, slot: Slot, signal: AbortSignal): Promise<void> {
  const request = JSON.parse(row.request) as GenerationRequest;
  const dir = generationDir(config, row.id);
  const imagesDir = path.join(dir, 'images');
  fs.mkdirSync(imagesDir, { recursive: true });
  const specFile = path.join(dir, 'spec.json');
  fs.writeFileSync(
    specFile,
    JSON.stringify({
      version: 1,
      base_model_path: row.base_model_path,
      loras: request.loras.map((l) => ({ path: l.weights_path, scale: l.scale })),
      prompts: [request.prompt],
      ...(request.width ? { width: request.width } : {}),
      ...(request.height ? { height: request.height } : {}),
      ...(request.steps ? { steps: request.steps } : {}),
      guidance_scale: request.guidance_scale,
      seed: request.seed,
      num_images: request.num_images,
      output_dir: imagesDir,
      device: slot.kind === 'gpu' ? 'cuda' : 'cpu',
      models_dir: path.join(config.dataDir, 'models'),
    }),
  );
  const images: string[] = [];
  let error: string | null = null;
  const result = await supervise({
    python: config.python,
    args: ['-m', 'kiln_trainer', 'generate', '--spec', specFile],
    env: trainerEnv(config, slot),
    logFile: path.join(dir, 'generate.log'),
    signal,
    graceMs: CANCEL_GRACE_MS,
    stallMs: config.trainerStallSeconds * 1000,
    onEvent: (e) => {
      if (e.type === 'image') images.push(path.basename(e.path));
      if (e.type === 'error') error = `Generation ${e.kind} error${e.where ? ` at ${e.where}` : ''}: ${e.message}`;
    },
  });
  if (signal.aborted) return;
  const ok = result.exitCode === 0 && result.outcome?.type === 'completed';
  const message = ok ? null : (error ?? `The generator exited with code ${result.exitCode}: ${result.stderrTail.slice(-3).join(' | ')}`);
  await finishGeneration(store, row.id, workerId, { status: ok ? 'COMPLETED' : 'FAILED', images: JSON.stringify(images), error_message: message });
}
