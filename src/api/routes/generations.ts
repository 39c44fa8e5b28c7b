import fs from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { generationDir } from '../../generations/runner.js';
import { GenerationNotFound, GenerationRefused, toGeneration } from '../../generations/service.js';
import { Generation, GenerationCreate } from '../schemas/generations.js';
import { HTTPError, HTTPValidationError } from '../schemas/errors.js';
import { HttpError, RequestValidationError } from '../errors.js';
import type { ApiDeps } from '../deps.js';

const Id = Type.Object({ generation_id: Type.String({ format: 'uuid' }) });

/** Generation with trained LoRAs, run by the engine on a training slot. */
export const generationRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, deps) => {
  const baseUrl = (request: { protocol: string; host: string }) => `${request.protocol}://${request.host}`;
  const load = async (id: string, principal: Parameters<typeof deps.generations.get>[1]) => {
    try {
      return await deps.generations.get(id, principal);
    } catch (err) {
      if (err instanceof GenerationNotFound) throw new HttpError(404, err.message);
      throw err;
    }
  };

  app.post(
    '/',
    {
      schema: {
        summary: 'Create Generation',
        description: 'Queues a generation with zero or more LoRAs of COMPLETED tasks; poll GET /generations/{id} for its images.',
        tags: ['Generations'],
        body: Type.Ref(GenerationCreate),
        response: { 202: Type.Ref(Generation), 401: Type.Ref(HTTPError), 422: Type.Ref(HTTPValidationError) },
      },
    },
    async (request, reply) => {
      try {
        const row = await deps.generations.create(request.body, request.principal, deps.config.defaultBaseModel);
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
    '/:generation_id',
    {
      schema: {
        summary: 'Get Generation',
        tags: ['Generations'],
        params: Id,
        response: { 200: Type.Ref(Generation), 401: Type.Ref(HTTPError), 404: Type.Ref(HTTPError), 422: Type.Ref(HTTPValidationError) },
      },
    },
    async (request) => toGeneration(await load(request.params.generation_id, request.principal), baseUrl(request)),
  );

  app.get(
    '/:generation_id/images/:name',
    { schema: { summary: 'Download Generated Image', tags: ['Generations'], params: Type.Object({ generation_id: Type.String({ format: 'uuid' }), name: Type.String({ pattern: '^[A-Za-z0-9_.-]+\\.png$' }) }) } },
    async (request, reply) => {
      const row = await load(request.params.generation_id, request.principal);
      if (!(JSON.parse(row.images) as string[]).includes(request.params.name)) throw new HttpError(404, 'Image not found');
      const file = path.join(generationDir(deps.config, row.id), 'images', request.params.name);
      return reply.type('image/png').send(fs.createReadStream(file));
    },
  );
};
