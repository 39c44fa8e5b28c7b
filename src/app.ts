import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { dashboardRoutes } from './api/routes/dashboard.js';
import { requireBearer } from './api/auth.js';
import type { ApiDeps } from './api/deps.js';
import { installErrorHandlers } from './api/errors.js';
import { healthRoutes } from './api/routes/health.js';
import { trainingRoutes } from './api/routes/training.js';
import { engineRoutes } from './api/routes/engine.js';
import { metricsRoutes } from './api/routes/metrics.js';
import { artifactRoutes } from './api/routes/artifacts.js';
import { liveRoutes } from './api/routes/live.js';
import { uploadRoutes } from './api/routes/uploads.js';
import { installRateLimits } from './api/rate-limit.js';
import { generationRoutes } from './api/routes/generations.js';
import { usageRoutes } from './api/routes/usage.js';
import { entityRoutes } from './api/routes/entities.js';
import { Generation, GenerationCreate } from './domain/schemas/generations.js';
import multipart from '@fastify/multipart';
import { SHARED_SCHEMAS } from './domain/schemas/errors.js';
import {
  CaptioningStrategy,
  EntityType,
  PriorityBody,
  TaskPriority,
  TrainingStatus,
  TrainingTask,
  TrainingTaskCreate,
  TrainingTaskFields,
  TrainingType,
} from './domain/schemas/training.js';
import { uuidv7 } from './util/ids.js';
import { createValidatorCompiler } from './api/validation.js';
import { seedStyleDocument } from './api/openapi-document.js';

export const BODY_LIMIT = 1024 * 1024;

export interface AppOptions {
  /** pino options, or false for silence (tests). */
  logger?: boolean | Record<string, unknown>;
}

/**
 * Builds the whole HTTP application. It only wires routes to the dependencies it is given;
 * `server.ts` listens, and tests call `app.inject` on the very same app.
 */
export async function buildApp(deps: ApiDeps, opts: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? { level: deps.config.logLevel },
    bodyLimit: BODY_LIMIT,
    requestIdHeader: 'x-request-id',
    genReqId: () => uuidv7(),
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  installErrorHandlers(app);

  const shared = [
    TrainingType,
    EntityType,
    TrainingStatus,
    CaptioningStrategy,
    TaskPriority,
    TrainingTaskCreate,
    TrainingTask,
    TrainingTaskFields,
    PriorityBody,
    GenerationCreate,
    Generation,
    ...SHARED_SCHEMAS,
  ];
  for (const schema of shared) app.addSchema(schema);
  app.setValidatorCompiler(createValidatorCompiler(shared));

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Kiln Training API', version: '1.0.0', description: 'FLUX LoRA and fine-tune training, wire-compatible with the seed Training API.' },
      components: { securitySchemes: { HTTPBearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ HTTPBearer: [] }],
    },
    // Keep each shared schema under its own name (TrainingTask, HTTPValidationError, …).
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    transformObject: (document) => ('openapiObject' in document ? seedStyleDocument(document.openapiObject) : document.swaggerObject),
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(multipart, { limits: { fileSize: deps.config.maxDownloadBytes + 1 } });
  await app.register(healthRoutes, deps);
  await app.register(metricsRoutes, deps);
  await app.register(dashboardRoutes);

  await app.register(
    async (api) => {
      api.addHook('onRequest', requireBearer(deps.verifier, deps.links));
      await installRateLimits(api);
      await api.register(trainingRoutes, { ...deps, prefix: '/training' });
      await api.register(engineRoutes, { ...deps, prefix: '/training' });
      await api.register(liveRoutes, { ...deps, prefix: '/training' });
      await api.register(artifactRoutes, { ...deps, prefix: '/training' });
      await api.register(uploadRoutes, { ...deps, prefix: '/uploads' });
      await api.register(generationRoutes, { ...deps, prefix: '/generations' });
      await api.register(usageRoutes, { ...deps, prefix: '/usage' });
      await api.register(entityRoutes, { ...deps, prefix: '/entities' });
    },
    { prefix: '/api/v1' },
  );
  return app;
}
