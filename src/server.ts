import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { openRuntime, type Runtime } from './runtime.js';

export interface Server {
  app: FastifyInstance;
  runtime: Runtime;
  url: string;
  stop(): Promise<void>;
}

/** Starts the API (and, unless told not to, the in-process worker) and listens. */
export async function startServer(config: Config, _opts: { worker: boolean } = { worker: true }): Promise<Server> {
  const runtime = await openRuntime(config);
  const app = await buildApp(runtime);
  const url = await app.listen({ port: config.port, host: config.host });
  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      await app.close();
      await runtime.close();
    })());
  return { app, runtime, url, stop };
}
