import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { saveUpload, UploadTooLargeError } from '../../preprocess/index.js';
import { HTTPError } from '../../domain/schemas/errors.js';
import { HttpError } from '../errors.js';
import type { ApiDeps } from '../deps.js';

const Upload = Type.Object(
  {
    id: Type.String(),
    reference: Type.String({ description: 'Use in source_images, e.g. upload://…' }),
    filename: Type.String(),
    size: Type.Integer(),
    sha256: Type.String(),
  },
  { title: 'Upload' },
);

export const MAX_FILES_PER_UPLOAD = 200;

/** Multipart uploads of images or zips, kept per tenant, referenced from source_images. */
export const uploadRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, deps) => {
  app.post(
    '/',
    {
      schema: {
        summary: 'Upload Source Files',
        description: `multipart/form-data with one or more file parts (at most ${MAX_FILES_PER_UPLOAD}); each becomes a reference usable in source_images by the same tenant.`,
        tags: ['Uploads'],
        consumes: ['multipart/form-data'],
        response: { 201: Type.Object({ uploads: Type.Array(Upload) }), 401: Type.Ref(HTTPError), 413: Type.Ref(HTTPError), 415: Type.Ref(HTTPError) },
      },
    },
    async (request, reply) => {
      if (!request.isMultipart()) throw new HttpError(415, 'Send the files as multipart/form-data');
      const uploads = [];
      try {
        for await (const part of request.files({ limits: { fileSize: deps.config.maxDownloadBytes + 1, files: MAX_FILES_PER_UPLOAD } })) {
          uploads.push(await saveUpload(deps.config, request.principal.tenantId, part.filename || 'upload', part.file));
          if (part.file.truncated) throw new UploadTooLargeError(deps.config.maxDownloadBytes);
        }
      } catch (err) {
        if (err instanceof UploadTooLargeError) throw new HttpError(413, `${err.message}; nothing past the limit was kept`);
        const code = (err as { code?: string }).code;
        if (code === 'FST_FILES_LIMIT') throw new HttpError(413, `At most ${MAX_FILES_PER_UPLOAD} files per upload request`);
        throw err;
      }
      if (uploads.length === 0) throw new HttpError(400, 'The request held no file part');
      return reply.code(201).send({ uploads });
    },
  );
};
