import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { slotsFromConfig, startDeliverer, startWorker } from './worker-process.js';
import { startHousekeeping } from './retention/housekeeping.js';
import { openRuntime, type Runtime } from './runtime.js';

export interface Server {
  app: FastifyInstance;
  runtime: Runtime;
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts the API and listens; with `worker`, also the embedded worker (one process, the
 * default), else only the webhook deliverer (fleet mode's API process). Either way it keeps the
 * data dir tidy: interrupted deletions finished, expired uploads deleted.
 */
export async function startServer(config: Config, opts: { worker: boolean } = { worker: true }): Promise<Server> {
  const runtime = await openRuntime(config);
  const app = await buildApp(runtime);
  const log = app.log as unknown as Logger;
  const background = opts.worker ? await startWorker(runtime, log, slotsFromConfig(config)) : startDeliverer(runtime, log);
  const housekeeping = startHousekeeping(config, runtime.taskStore, runtime.generationStore, log);
  const url = await app.listen({ port: config.port, host: config.host });
  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      // Stop taking work first; running stages give their leases back before the pool closes.
      await Promise.all([housekeeping.stop(), background.stop()]);
      await app.close();
      await runtime.close();
    })());
  return { app, runtime, url, stop };
}
