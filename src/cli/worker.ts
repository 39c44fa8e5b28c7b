import pino from 'pino';
import { loadConfig } from '../config.js';
import { slotsFromConfig, startWorker } from '../worker-process.js';
import { openRuntime } from '../runtime.js';
import type { Command } from './commands.js';

export const workerCommand: Command = {
  usage: `Usage: kiln worker [--gpus 0,1] [--cpu-slots N] [--preprocess N]

  --gpus LIST      one training slot per GPU index; the trainer gets CUDA_VISIBLE_DEVICES
  --cpu-slots N    training slots on the CPU when no GPU is given (default KILN_CPU_SLOTS)
  --preprocess N   concurrent preprocessing stages (default KILN_PREPROCESS_SLOTS)

SIGTERM stops claiming, stops running stages at a safe point and gives their leases back.`,
  options: {
    gpus: { type: 'string' },
    'cpu-slots': { type: 'string' },
    preprocess: { type: 'string' },
  },
  async run(values) {
    const config = loadConfig();
    const slots = slotsFromConfig(config);
    if (values.gpus !== undefined)
      slots.gpus = (values.gpus as string)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    if (values['cpu-slots'] !== undefined) slots.cpuSlots = Number(values['cpu-slots']);
    if (values.preprocess !== undefined) slots.preprocess = Number(values.preprocess);
    for (const [name, n] of [
      ['--cpu-slots', slots.cpuSlots],
      ['--preprocess', slots.preprocess],
    ] as const) {
      if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number, got ${n}`);
    }
    const log = pino({ level: config.logLevel });
    const runtime = await openRuntime(config);
    const running = await startWorker(runtime, log, slots);
    log.info({ worker: running.worker.id }, 'worker ready');
    const shutdown = (signal: string) => {
      log.info({ signal }, 'worker shutting down');
      running
        .stop()
        .then(() => runtime.close())
        .then(
          () => process.exit(0),
          (err) => {
            log.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
    return undefined;
  },
};
