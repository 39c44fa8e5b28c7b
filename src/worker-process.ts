import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Slot } from './engine/job-kind.js';
import { generateKind, preprocessKind, trainKind } from './engine/kinds.js';
import { Worker } from './engine/worker.js';
import { generationStage } from './generations/stage.js';
import { preprocessingStage } from './preprocess/stage.js';
import { CANCEL_GRACE_MS } from './python/run.js';
import type { Runtime } from './runtime.js';
import { trainingStage } from './training/stage.js';
import { ProgressAnnouncer } from './webhooks/outbox.js';
import { WebhookDeliverer } from './webhooks/deliverer.js';

export interface WorkerSlots {
  gpus: string[];
  cpuSlots: number;
  preprocess: number;
}

/** One accelerator slot per GPU; CPU slots only when no GPU is offered. */
export function acceleratorSlots(slots: WorkerSlots): Slot[] {
  if (slots.gpus.length) return slots.gpus.map((device) => ({ kind: 'gpu', device }));
  return Array.from({ length: slots.cpuSlots }, (_, index) => ({ kind: 'cpu', index }));
}

export function slotsFromConfig(config: Config): WorkerSlots {
  return { gpus: config.gpus, cpuSlots: config.cpuSlots, preprocess: config.preprocessSlots };
}

/**
 * The wiring of a worker: each job kind with its handler, generations listed before training
 * so a free accelerator slot goes to a waiting generation first (decision 0003). With the
 * webhook deliverer, this is what `kiln worker` and `kiln serve` run.
 */
export async function startWorker(runtime: Runtime, log: Logger, slots: WorkerSlots) {
  const { config, taskStore, generationStore } = runtime;
  const announcer = new ProgressAnnouncer();
  const worker = new Worker({
    store: runtime.store,
    config,
    kinds: [
      preprocessKind(taskStore, preprocessingStage(config)),
      generateKind(generationStore, generationStage(config)),
      trainKind(taskStore, trainingStage({ config, tasks: taskStore, announcer })),
    ],
    log,
    metrics: runtime.metrics,
    slots: { accelerator: acceleratorSlots(slots), preprocess: slots.preprocess },
    // A trainer gets CANCEL_GRACE_MS to checkpoint after SIGTERM; two more seconds cover its exit.
    stopGraceMs: CANCEL_GRACE_MS + 2000,
  });
  // Work created or requeued in this process is claimed at once, without waiting for a poll.
  for (const rows of [taskStore, generationStore] as const) {
    rows.onCommitted((row: { status: string }) => {
      if (rows.waiting.includes(row.status)) worker.poke();
    });
  }
  await worker.start();
  const deliverer = startDeliverer(runtime, log);
  return {
    worker,
    async stop() {
      deliverer.stop();
      await worker.stop();
    },
  };
}

export function startDeliverer(runtime: Runtime, log: Logger): WebhookDeliverer {
  const deliverer = new WebhookDeliverer({ store: runtime.store, config: runtime.config, log, metrics: runtime.metrics });
  deliverer.start();
  return deliverer;
}
