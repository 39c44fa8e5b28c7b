import type { FastifyPluginAsync } from 'fastify';
import type { ApiDeps } from '../deps.js';

/** Prometheus scrape endpoint, open like health: it carries counts, never task contents. */
export const metricsRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    const body = await deps.metrics.registry.metrics();
    return reply.type(deps.metrics.registry.contentType).send(body);
  });
};
