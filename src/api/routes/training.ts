import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ListQuery, TaskIdParams, TrainingTask, TrainingTaskCreate, TrainingTaskList } from '../../domain/schemas/training.js';
import { HTTPError, HTTPValidationError } from '../../domain/schemas/errors.js';
import { toTrainingTask } from '../../tasks/view.js';
import type { ApiDeps } from '../deps.js';

const errors = {
  401: Type.Ref(HTTPError),
  404: Type.Ref(HTTPError),
  422: Type.Ref(HTTPValidationError),
};

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
        response: { 201: Type.Ref(TrainingTask), 403: Type.Ref(HTTPError), ...errors },
      },
    },
    async (request, reply) => {
      await validateCreate(request.body, request.principal);
      const row = await tasks.create(request.body, request.principal);
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
        response: { 200: TrainingTaskList, ...errors },
      },
    },
    async (request) => (await tasks.list(request.principal, request.query)).map(toTrainingTask),
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
        response: { 200: Type.Ref(TrainingTask), ...errors },
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
        response: { 200: Type.Ref(TrainingTask), 409: Type.Ref(HTTPError), ...errors },
      },
    },
    async (request) => toTrainingTask(await tasks.cancel(request.params.task_id, request.principal)),
  );
};
