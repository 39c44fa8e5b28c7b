import type { FastifyContextConfig, FastifyInstance, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import type { Config } from '../config.js';
import { HttpError } from './errors.js';

/** What a limited route counts, with the words its 429 uses. */
const LIMITS = {
  creates: { perMinute: (c: Config) => c.rateLimit.createsPerMinute, what: 'creations' },
  uploads: { perMinute: (c: Config) => c.rateLimit.uploadsPerMinute, what: 'upload requests' },
} as const;

export type LimitKind = keyof typeof LIMITS;

/**
 * Registers @fastify/rate-limit for the routes that ask for it with `rateLimited`; none is
 * limited by default. Register it before those routes: it attaches itself as each is added.
 *
 * Counters are the plugin's in-memory store, one per route and per API process: a fleet of N
 * API processes behind a balancer lets a tenant make up to N times the limit. That bounds a
 * runaway client, which is what this is for; an exact fleet-wide quota would need a shared
 * store (the plugin takes Redis), and Kiln has none to offer.
 */
export async function installRateLimits(app: FastifyInstance): Promise<void> {
  await app.register(rateLimit, {
    global: false,
    // onRequest, after the Bearer check of the same scope (scope hooks run before a route's),
    // so the tenant is known and a limited request is refused before its body is read.
    hook: 'onRequest',
    keyGenerator: (request: FastifyRequest) => `tenant:${request.principal.tenantId ?? ''}`,
    allowList: (request: FastifyRequest) => request.principal.admin,
  });
}

/**
 * A route's `config` for one of the limits: counted per tenant over a minute, or not at all
 * when the configured number is 0. Each route counts on its own.
 */
export function rateLimited(config: Config, kind: LimitKind): FastifyContextConfig {
  const max = LIMITS[kind].perMinute(config);
  if (max <= 0) return { rateLimit: false };
  return {
    rateLimit: {
      max,
      timeWindow: 60_000,
      // The plugin has set Retry-After on the reply by now; the error handler sends FastAPI's body.
      errorResponseBuilder: (_request, context) =>
        new HttpError(429, `Rate limit exceeded: at most ${max} ${LIMITS[kind].what} per minute per tenant; retry in ${Math.ceil(context.ttl / 1000)} s`),
    },
  };
}
