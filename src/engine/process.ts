import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Runtime } from '../runtime.js';
import { ProgressAnnouncer } from '../webhooks/outbox.js';
import { WebhookDeliverer } from '../webhooks/deliverer.js';
import { realHandlers } from './handlers.js';
import type { Slot, StageHandlers } from './stages.js';
import { Worker } from './worker.js';
import { generationJobs } from '../generations/runner.js';

export interface WorkerSlots {
  gpus: string[];
  cpuSlots: number;
  preprocess: number;
}

/** One training slot per GPU; CPU slots only when no GPU is offered. */
export function trainSlotsOf(slots: WorkerSlots): Slot[] {
  if (slots.gpus.length) return slots.gpus.map((device) => ({ kind: 'gpu', device }));
  return Array.from({ length: slots.cpuSlots }, (_, index) => ({ kind: 'cpu', index }));
}

export function slotsFromConfig(config: Config): WorkerSlots {
  return { gpus: config.gpus, cpuSlots: config.cpuSlots, preprocess: config.preprocessSlots };
}

/** A worker and a webhook deliverer over a runtime: what `kiln worker` and `kiln serve` run. */
export async function startWorker(runtime: Runtime, log: Logger, slots: WorkerSlots, handlers?: StageHandlers) {
  const announcer = new ProgressAnnouncer();
  const worker = new Worker({
    tasks: runtime.taskStore,
    config: runtime.config,
    handlers: handlers ?? realHandlers({ config: runtime.config, tasks: runtime.taskStore, announcer }),
    log,
    metrics: runtime.metrics,
    trainSlots: trainSlotsOf(slots),
    preprocessSlots: slots.preprocess,
    slotJobs: generationJobs(runtime.store, runtime.config),
  });
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
