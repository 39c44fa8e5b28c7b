import fs from 'node:fs';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { contentTypeOf, listArtifacts, resolveArtifact } from '../../artifacts/catalog.js';
import { Artifact } from '../../domain/schemas/artifacts.js';
import { TaskIdParams } from '../../domain/schemas/training.js';
import { HttpError } from '../errors.js';
import type { ApiDeps } from '../deps.js';
import { errorResponses, fileResponse } from '../responses.js';

/** Parses a single `bytes=a-b` range; null for none, 'invalid' for one that cannot be served. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'invalid' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'invalid';
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'invalid';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return start > end || start >= size ? 'invalid' : { start, end };
}

/** Final weights, checkpoints, samples, manifest and log of a task: listed, then streamed. */
export const artifactRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, deps) => {
  app.get(
    '/:task_id/artifacts',
    {
      schema: {
        summary: 'List Artifacts',
        tags: ['Artifacts'],
        params: TaskIdParams,
        response: { 200: Type.Array(Artifact), ...errorResponses({ byId: true }) },
      },
    },
    async (request) => {
      const task = await deps.tasks.get(request.params.task_id, request.principal);
      const base = `/api/v1/training/${task.id}/artifacts/`;
      const encoded = (artifactPath: string) => artifactPath.split('/').map(encodeURIComponent).join('/');
      return (await listArtifacts(task.training_folder)).map((a) => ({ ...a, url: base + encoded(a.path) + deps.links.query(task.id, a.path) }));
    },
  );

  app.get(
    '/:task_id/artifacts/*',
    {
      config: { signedLink: true },
      schema: {
        summary: 'Download Artifact',
        description:
          'Streams one artifact; honours a single `Range: bytes=a-b`. Without a bearer header, the `exp` and `sig` of a signed link ' +
          "(an artifact listing's `url`) open this one file until it expires.",
        tags: ['Artifacts'],
        params: Type.Object({ task_id: Type.String({ format: 'uuid' }), '*': Type.String() }),
        querystring: Type.Object({
          exp: Type.Optional(Type.String({ description: 'Signed link: when it expires, in Unix seconds' })),
          sig: Type.Optional(Type.String({ description: 'Signed link: its signature' })),
        }),
        response: {
          200: fileResponse('The whole artifact, in its own media type', ['*/*']),
          206: fileResponse('The requested range of the artifact', ['*/*']),
          ...errorResponses({ byId: true, ranges: true, signedLink: true }),
        },
      },
    },
    async (request, reply) => {
      const task = await deps.tasks.get(request.params.task_id, request.principal);
      const file = resolveArtifact(task.training_folder, request.params['*']);
      if (!file) throw new HttpError(404, 'Artifact not found');
      const size = fs.statSync(file).size;
      reply.header('accept-ranges', 'bytes').type(contentTypeOf(file));
      const range = parseRange(request.headers.range, size);
      if (range === 'invalid') throw new HttpError(416, `Range not satisfiable for a ${size}-byte file`, { 'content-range': `bytes */${size}` });
      if (!range) return reply.header('content-length', size).send(fs.createReadStream(file));
      return reply
        .code(206)
        .header('content-range', `bytes ${range.start}-${range.end}/${size}`)
        .header('content-length', range.end - range.start + 1)
        .send(fs.createReadStream(file, { start: range.start, end: range.end }));
    },
  );
};
