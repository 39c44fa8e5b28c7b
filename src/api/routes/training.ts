import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ListQuery, TaskIdParams, TrainingTask, TrainingTaskCreate, TrainingTaskList } from '../../domain/schemas/training.js';
import { parseFields, pickTrainingTask, toTrainingTask } from '../../tasks/view.js';
import type { ApiDeps } from '../deps.js';
import { RequestValidationError, type ValidationIssue } from '../errors.js';
import { createOnce, IdempotencyHeaders } from '../idempotency.js';
import { errorResponses, NoContent } from '../responses.js';
import { rateLimited } from '../rate-limit.js';
import { refuseOverAllowance } from '../quota.js';

/** The seed's four endpoints, same paths, shapes and status codes. */
export const trainingRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, deps) => {
  const { tasks, validateCreate } = deps;

  app.post(
    '/',
    {
      schema: {
        operationId: 'create_training_task',
        summary: 'Create Training Task',
        description: 'Create and start a new training task.',
        tags: ['Training'],
        body: Type.Ref(TrainingTaskCreate),
        headers: IdempotencyHeaders,
        response: { 201: Type.Ref(TrainingTask), ...errorResponses({ body: 'json', admin: true, rateLimited: true }) },
      },
      config: rateLimited(deps.config, 'creates'),
      // The schema's default for base_model_path is the seed's (FLUX.1-dev), and the validator
      // fills defaults in: a body that names no base model gets KILN_DEFAULT_BASE_MODEL first.
      preValidation: async (request) => {
        const body = request.body as Record<string, unknown> | null;
        if (body && typeof body === 'object' && !Array.isArray(body) && (body.base_model_path === undefined || body.base_model_path === null)) {
          body.base_model_path = deps.config.defaultBaseModel;
        }
      },
    },
    async (request, reply) => {
      const row = await createOnce(request, reply, 'create_training_task', {
        replayed: (key) => tasks.replayed(key),
        validate: async () => {
          await refuseOverAllowance(deps, request.principal);
          const issues: ValidationIssue[] = [];
          await validateCreate(request.body, request.principal).catch((err: unknown) => {
            if (!(err instanceof RequestValidationError)) throw err;
            issues.push(...err.issues);
          });
          const initLora = await tasks.initLoraProblem(request.body, request.principal);
          if (initLora) issues.push({ loc: ['body', 'init_lora_task_id'], msg: initLora, type: 'value_error' });
          if (issues.length) throw new RequestValidationError(issues);
        },
        create: (key) => tasks.create(request.body, request.principal, key),
      });
      return reply.code(201).send(toTrainingTask(row));
    },
  );

  app.get(
    '/',
    {
      schema: {
        operationId: 'list_training_tasks',
        summary: 'List Training Tasks',
        description: 'List all training tasks with pagination.',
        tags: ['Training'],
        querystring: ListQuery,
        response: { 200: TrainingTaskList, ...errorResponses({ query: true }) },
      },
    },
    async (request, reply) => {
      // Serialized as built: the items are either whole tasks or the named fields, and the
      // schema says so with an anyOf that a schema-driven serializer would test item by item.
      // A custom serializer leaves the content type unset (schemathesis found it): say it is JSON.
      // Bytes rather than a string: Fastify would measure a string's UTF-8 length for the
      // Content-Length and the socket encode it again, two passes over 100+ KiB (docs/benchmarks.md).
      reply.type('application/json; charset=utf-8').serializer((page: unknown) => Buffer.from(JSON.stringify(page)) as unknown as string);
      const { fields } = request.query;
      if (fields === undefined) return (await tasks.list(request.principal, request.query)).map(toTrainingTask);
      const names = parseFields(fields);
      return (await tasks.listFields(request.principal, request.query, names)).map((row) => pickTrainingTask(row, names));
    },
  );

  app.get(
    '/:task_id',
    {
      schema: {
        operationId: 'get_training_status',
        summary: 'Get Training Status',
        description: 'Get status of a training task.',
        tags: ['Training'],
        params: TaskIdParams,
        response: { 200: Type.Ref(TrainingTask), ...errorResponses({ byId: true }) },
      },
    },
    async (request) => toTrainingTask(await tasks.get(request.params.task_id, request.principal)),
  );

  app.post(
    '/:task_id/cancel',
    {
      schema: {
        operationId: 'cancel_training',
        summary: 'Cancel Training',
        description: 'Cancel a running training task. Cancelling a cancelled task returns it unchanged; a completed or failed one is 409.',
        tags: ['Training'],
        params: TaskIdParams,
        response: { 200: Type.Ref(TrainingTask), ...errorResponses({ byId: true, body: 'json', transition: true }) },
      },
    },
    async (request) => toTrainingTask(await tasks.cancel(request.params.task_id, request.principal)),
  );

  app.delete(
    '/:task_id',
    {
      schema: {
        operationId: 'delete_training_task',
        summary: 'Delete Training Task',
        description:
          'Deletes a COMPLETED, FAILED or CANCELLED task with everything it holds: its photos and dataset, checkpoints, weights, samples, logs and webhook history. A task still running is a 409 (cancel it first), and so is one whose LoRA a pending or running generation uses. The uploads it was made from are kept until they expire (KILN_UPLOAD_RETENTION_HOURS) or are deleted with DELETE /api/v1/uploads/{id}.',
        tags: ['Training'],
        params: TaskIdParams,
        response: { 204: NoContent, ...errorResponses({ byId: true, transition: true }) },
      },
    },
    async (request, reply) => {
      await tasks.delete(request.params.task_id, request.principal);
      return reply.code(204).send(null);
    },
  );
};
