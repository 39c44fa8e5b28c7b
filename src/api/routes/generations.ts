import fs from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { generationPaths } from '../../generations/request.js';
import { GenerationNotFound, GenerationRefused, toGeneration } from '../../generations/service.js';
import { QueuePlace } from '../../domain/schemas/queue.js';
import { generationQueuePlace } from '../../engine/queue-place.js';
import { Generation, GenerationCreate, GenerationList, GenerationListQuery } from '../../domain/schemas/generations.js';
import { HttpError, RequestValidationError } from '../errors.js';
import { createOnce, IdempotencyHeaders } from '../idempotency.js';
import { errorResponses, eventStream, fileResponse, NoContent } from '../responses.js';
import { checkWebhookUrl } from '../validate-create.js';
import type { ApiDeps } from '../deps.js';
import { streamJob } from '../sse.js';
import { rateLimited } from '../rate-limit.js';
import { GENERATION_LIFECYCLE, type GenerationStatus } from '../../domain/lifecycle.js';
import { refuseOverAllowance } from '../quota.js';

const Id = Type.Object({ generation_id: Type.String({ format: 'uuid' }) });

/** Generation with trained LoRAs, run by the engine on a training slot. */
export const generationRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, deps) => {
  const baseUrl = (request: { protocol: string; host: string }) => `${request.protocol}://${request.host}`;
  const guard = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      if (err instanceof GenerationNotFound) throw new HttpError(404, err.message);
      throw err;
    }
  };
  const load = (id: string, principal: Parameters<typeof deps.generations.get>[1]) => guard(() => deps.generations.get(id, principal));

  app.post(
    '/',
    {
      schema: {
        summary: 'Create Generation',
        description: 'Queues a generation with zero or more LoRAs of COMPLETED tasks; poll GET /generations/{id} for its images.',
        tags: ['Generations'],
        body: Type.Ref(GenerationCreate),
        headers: IdempotencyHeaders,
        response: { 202: Type.Ref(Generation), ...errorResponses({ body: 'json', rateLimited: true }) },
      },
      config: rateLimited(deps.config, 'creates'),
    },
    async (request, reply) => {
      try {
        const row = await createOnce(request, reply, 'create_generation', {
          replayed: (key) => deps.generations.replayed(key),
          validate: async () => {
            await refuseOverAllowance(deps, request.principal);
            const issues = request.body.webhook_url ? await checkWebhookUrl(request.body.webhook_url, deps.config) : [];
            if (issues.length) throw new RequestValidationError(issues);
          },
          create: (key) => deps.generations.create(request.body, request.principal, deps.config.defaultBaseModel, key),
        });
        return reply.code(202).send(toGeneration(row, baseUrl(request)));
      } catch (err) {
        if (err instanceof GenerationRefused) {
          throw new RequestValidationError(
            err.problems.map((p) => ({ loc: p.index === null ? ['body', p.field] : ['body', 'loras', p.index, p.field], msg: p.msg, type: 'value_error' })),
          );
        }
        throw err;
      }
    },
  );

  app.get(
    '/',
    {
      schema: {
        operationId: 'list_generations',
        summary: 'List Generations',
        description: 'The caller’s generations, newest first (an admin’s: every tenant’s), paged as the training list is.',
        tags: ['Generations'],
        querystring: GenerationListQuery,
        response: { 200: GenerationList, ...errorResponses({ query: true }) },
      },
    },
    async (request) => (await deps.generations.list(request.principal, request.query)).map((row) => toGeneration(row, baseUrl(request))),
  );

  app.get(
    '/:generation_id',
    {
      schema: {
        summary: 'Get Generation',
        tags: ['Generations'],
        params: Id,
        response: { 200: Type.Ref(Generation), ...errorResponses({ byId: true }) },
      },
    },
    async (request) => toGeneration(await load(request.params.generation_id, request.principal), baseUrl(request)),
  );

  app.get(
    '/:generation_id/images/:name',
    {
      schema: {
        summary: 'Download Generated Image',
        tags: ['Generations'],
        params: Type.Object({ generation_id: Type.String({ format: 'uuid' }), name: Type.String({ pattern: '^[A-Za-z0-9_.-]+\\.png$' }) }),
        response: { 200: fileResponse('The image', ['image/png']), ...errorResponses({ byId: true }) },
      },
    },
    async (request, reply) => {
      const row = await load(request.params.generation_id, request.principal);
      if (!(JSON.parse(row.images) as string[]).includes(request.params.name)) throw new HttpError(404, 'Image not found');
      const file = path.join(generationPaths(deps.config.dataDir, row.id).images, request.params.name);
      return reply.type('image/png').send(fs.createReadStream(file));
    },
  );

  const errors = errorResponses({ byId: true, body: 'json', transition: true });

  app.post(
    '/:generation_id/cancel',
    {
      schema: {
        summary: 'Cancel Generation',
        description: 'CANCELLED at once; a running generator stops within seconds. Cancelling again returns it unchanged; a COMPLETED or FAILED one is a 409.',
        tags: ['Generations'],
        params: Id,
        response: { 200: Type.Ref(Generation), ...errors },
      },
    },
    async (request) => toGeneration(await guard(() => deps.generations.cancel(request.params.generation_id, request.principal)), baseUrl(request)),
  );

  app.post(
    '/:generation_id/retry',
    {
      schema: {
        summary: 'Retry Generation',
        description: 'Puts a FAILED or CANCELLED generation back in the queue with its seed; other statuses are a 409.',
        tags: ['Generations'],
        params: Id,
        response: { 200: Type.Ref(Generation), ...errors },
      },
    },
    async (request) => toGeneration(await guard(() => deps.generations.retry(request.params.generation_id, request.principal)), baseUrl(request)),
  );

  app.delete(
    '/:generation_id',
    {
      schema: {
        summary: 'Delete Generation',
        description: 'Deletes a COMPLETED, FAILED or CANCELLED generation and its images; a pending or running one is a 409 (cancel it first).',
        tags: ['Generations'],
        params: Id,
        response: { 204: NoContent, ...errorResponses({ byId: true, transition: true }) },
      },
    },
    async (request, reply) => {
      await guard(() => deps.generations.delete(request.params.generation_id, request.principal));
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/:generation_id/queue',
    {
      schema: {
        summary: 'Generation Queue Place',
        description: 'Where a PENDING generation stands: how many generations start before it. The event stream sends the same as `queue` events while it waits.',
        tags: ['Generations'],
        params: Id,
        response: { 200: QueuePlace, ...errorResponses({ byId: true }) },
      },
    },
    async (request) => generationQueuePlace(deps.generationStore, await load(request.params.generation_id, request.principal)),
  );

  app.get(
    '/:generation_id/events',
    {
      schema: {
        summary: 'Stream Generation Events (SSE)',
        description:
          'Server-Sent Events: `status` whenever status or attempt change; `queue` (as GET /generations/{id}/queue) while it waits, whenever its place changes, and once more when it stops waiting; then every generator event as its own type (`image`, `log`, `completed`, `error`, …) with `id` = its sequence number. Ends with `end` once the generation is finished. Send Last-Event-ID to resume.',
        tags: ['Generations'],
        params: Id,
        response: { 200: eventStream, ...errorResponses({ byId: true }) },
      },
    },
    async (request, reply) => {
      const generation = await load(request.params.generation_id, request.principal);
      await streamJob(request, reply, {
        read: () => deps.generationStore.get(generation.id),
        eventsFile: generationPaths(deps.config.dataDir, generation.id).events,
        status: (row) => ({ status: row.status, attempt: row.attempt, images: (JSON.parse(row.images) as string[]).length, error_message: row.error_message }),
        snapshot: (row) => `${row.status}:${row.attempt}`,
        over: (row) => GENERATION_LIFECYCLE.terminal.includes(row.status as GenerationStatus) && row.lease_owner === null,
        queue: (row) => generationQueuePlace(deps.generationStore, row),
      });
    },
  );
};
