import type { FastifyPluginAsync } from 'fastify';
import { sql } from 'kysely';
import type { ApiDeps } from '../deps.js';

/** Liveness and readiness, open to all: orchestrators probe them without credentials. */
export const healthRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    try {
      await sql`select 1`.execute(deps.store.db);
      return { status: 'ready', database: deps.store.dialect };
    } catch {
      return reply.code(503).send({ status: 'unavailable', database: deps.store.dialect, detail: 'database unreachable' });
    }
  });
};
