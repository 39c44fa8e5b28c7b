import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { deleteUpload, RASTER_FORMATS, saveUpload, uploadExpiry, UploadNotFoundError, UploadTooLargeError, UPLOAD_ID } from '../../preprocess/index.js';
import { describeShortage, diskShortage, isDiskFull } from '../../util/disk-space.js';
import { HttpError } from '../errors.js';
import type { ApiDeps } from '../deps.js';
import { errorResponses, NoContent } from '../responses.js';
import { rateLimited } from '../rate-limit.js';

const Upload = Type.Object(
  {
    id: Type.String(),
    reference: Type.String({ description: 'Use in source_images, e.g. upload://…' }),
    filename: Type.String(),
    size: Type.Integer(),
    sha256: Type.String(),
    created_at: Type.String({ format: 'date-time' }),
    expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
      description:
        'After this the upload is deleted unless a task still waits to preprocess it (KILN_UPLOAD_RETENTION_HOURS); null when uploads are kept until deleted. A task keeps its own copy of each upload it has preprocessed.',
    }),
  },
  { title: 'Upload' },
);

export const MAX_FILES_PER_UPLOAD = 200;

/** The form as the document shows it; @fastify/multipart reads the parts themselves, as a stream. */
const UploadForm = Type.Object(
  {
    files: Type.Array(Type.String({ format: 'binary' }), {
      minItems: 1,
      maxItems: MAX_FILES_PER_UPLOAD,
      description: `Images (${Object.values(RASTER_FORMATS).join(', ')}) or .zip archives of images; any part name is accepted, as long as it is a file part`,
    }),
  },
  { title: 'UploadForm' },
);

/** RFC 2046: a multipart body names its boundary, of 1 to 70 characters; the parser trusts it to. */
const BOUNDARY = /;\s*boundary=(?:"[^"]{1,70}"|[^\s;"]{1,70})\s*(?:;|$)/i;

/** Seconds a client is asked to wait for space to be freed: an operator's work, not a blip. */
const DISK_RETRY_AFTER_SECONDS = 300;

function diskFull(detail: string): HttpError {
  return new HttpError(507, detail, { 'retry-after': String(DISK_RETRY_AFTER_SECONDS) });
}

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
        body: UploadForm,
        response: {
          201: Type.Object({ uploads: Type.Array(Upload) }),
          ...errorResponses({ body: 'multipart', badRequest: true, rateLimited: true, database: false, storesFiles: true }),
        },
      },
      // The body schema documents the form; it is not a validator, since the parts are streamed.
      validatorCompiler: () => () => true,
      config: rateLimited(deps.config, 'uploads'),
    },
    async (request, reply) => {
      if (!request.isMultipart()) throw new HttpError(415, 'Send the files as multipart/form-data');
      if (!BOUNDARY.test(request.headers['content-type'] ?? '')) throw new HttpError(400, 'multipart/form-data needs a boundary parameter of 1 to 70 characters');
      const shortage = diskShortage(deps.config.dataDir, deps.config.minFreeDiskMb);
      if (shortage) throw diskFull(`Uploads are refused while ${describeShortage(shortage)}`);
      const uploads = [];
      let filename = 'upload';
      try {
        for await (const part of request.files({ limits: { fileSize: deps.config.maxDownloadBytes + 1, files: MAX_FILES_PER_UPLOAD } })) {
          filename = part.filename || 'upload';
          const stored = await saveUpload(deps.config, request.principal.tenantId, filename, part.file);
          uploads.push({ ...stored, expires_at: uploadExpiry(deps.config, Date.parse(stored.created_at)) });
          if (part.file.truncated) throw new UploadTooLargeError(deps.config.maxDownloadBytes);
        }
      } catch (err) {
        // The client gets no reference to the files this request stored before it failed: they go too.
        await Promise.all(uploads.map((stored) => deleteUpload(deps.config, request.principal.tenantId, stored.reference).catch(() => undefined)));
        const code = (err as { code?: string }).code;
        if (isDiskFull(err)) throw diskFull(`The data dir's disk filled up while storing ${JSON.stringify(filename)}; nothing of this request was kept`);
        // Ours or the multipart parser's, whichever noticed first: the same limit either way.
        if (err instanceof UploadTooLargeError || code === 'FST_REQ_FILE_TOO_LARGE') {
          throw new HttpError(413, `${JSON.stringify(filename)}: ${new UploadTooLargeError(deps.config.maxDownloadBytes).message}; nothing past the limit was kept`);
        }
        if (code === 'FST_FILES_LIMIT') throw new HttpError(413, `At most ${MAX_FILES_PER_UPLOAD} files per upload request`);
        // A body cut short or not framed by its boundary: in the parser's words, or as the file
        // stream that ended before its part did.
        if (code === 'ERR_STREAM_PREMATURE_CLOSE') throw new HttpError(400, `Malformed multipart body: ${JSON.stringify(filename)} ended before its boundary`);
        if (err instanceof Error && / multipart data$/.test(err.message)) throw new HttpError(400, `Malformed multipart body: ${err.message}`);
        throw err;
      }
      if (uploads.length === 0) throw new HttpError(400, 'The request held no file part');
      return reply.code(201).send({ uploads });
    },
  );

  app.delete(
    '/:upload_id',
    {
      schema: {
        summary: 'Delete Upload',
        description:
          'Deletes an upload now rather than when it expires. Tasks that already preprocessed it keep their own copy; a task still waiting to preprocess it will leave it out as not found.',
        tags: ['Uploads'],
        params: Type.Object({ upload_id: Type.String({ pattern: UPLOAD_ID.source, description: 'The id of upload://<id>' }) }),
        response: { 204: NoContent, ...errorResponses({ byId: true, database: false }) },
      },
    },
    async (request, reply) => {
      try {
        await deleteUpload(deps.config, request.principal.tenantId, request.params.upload_id);
      } catch (err) {
        if (err instanceof UploadNotFoundError) throw new HttpError(404, 'Upload not found');
        throw err;
      }
      return reply.code(204).send(null);
    },
  );
};
