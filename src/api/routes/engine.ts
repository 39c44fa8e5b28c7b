import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PriorityBody, TaskIdParams, TrainingTask } from '../../domain/schemas/training.js';
import { QueuePlace } from '../../domain/schemas/queue.js';
import { taskQueuePlace } from '../../engine/queue-place.js';
import { runsOf } from '../../store/stage-runs.js';
import { toTrainingTask } from '../../tasks/view.js';
import type { ApiDeps } from '../deps.js';
import { errorResponses } from '../responses.js';

const WebhookDelivery = Type.Object(
  {
    id: Type.String({ description: 'The webhook-id header of every attempt' }),
    event_type: Type.String(),
    url: Type.String(),
    status: Type.String({ description: 'pending, delivered or failed' }),
    attempts: Type.Integer(),
    next_attempt_at: Type.String({ format: 'date-time' }),
    last_status_code: Type.Union([Type.Integer(), Type.Null()]),
    last_error: Type.Union([Type.String(), Type.Null()]),
    created_at: Type.String({ format: 'date-time' }),
    delivered_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { title: 'WebhookDelivery' },
);

const StageRun = Type.Object(
  {
    stage: Type.String({ description: 'preprocess or train' }),
    attempt: Type.Integer(),
    slot: Type.Union([Type.String({ description: 'gpu, cpu or preprocess' }), Type.Null()]),
    worker_id: Type.String(),
    started_at: Type.String({ format: 'date-time' }),
    ended_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    seconds: Type.Union([Type.Number(), Type.Null()], { description: 'null while the run goes on' }),
    outcome: Type.Union([
      Type.String({ description: 'completed, failed, cancelled, released (the worker shut down), lease_lost, lease_expired (rescued), superseded or unwritten' }),
      Type.Null(),
    ]),
  },
  { title: 'StageRun' },
);

/** Kiln's additions to the seed's training endpoints: queue control and place, retry, photo deletion, webhook history, stage runs. */
export const engineRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, deps) => {
  const { tasks } = deps;

  app.patch(
    '/:task_id/priority',
    {
      schema: {
        summary: 'Set Task Priority',
        description: 'Admin scope. Sets priority (0 LOW … 3 URGENT) and priority_changed_at; the queue reorders at the next claim.',
        tags: ['Training'],
        params: TaskIdParams,
        body: Type.Ref(PriorityBody),
        response: { 200: Type.Ref(TrainingTask), ...errorResponses({ byId: true, body: 'json', admin: true }) },
      },
    },
    async (request) => toTrainingTask(await tasks.setPriority(request.params.task_id, request.body.priority, request.principal)),
  );

  app.post(
    '/:task_id/retry',
    {
      schema: {
        summary: 'Retry Training',
        description: 'Puts a FAILED or CANCELLED task back in the queue; training resumes from its newest checkpoint.',
        tags: ['Training'],
        params: TaskIdParams,
        response: { 200: Type.Ref(TrainingTask), ...errorResponses({ byId: true, body: 'json', transition: true }) },
      },
    },
    async (request) => toTrainingTask(await tasks.retry(request.params.task_id, request.principal)),
  );

  app.delete(
    '/:task_id/photos',
    {
      schema: {
        summary: 'Delete Training Photos',
        description:
          "Deletes a finished task's photos: its copies of the sources, the dataset's images and captions, the trainer's caches, and the uploads it was made from (unless a task still waiting to preprocess names one). Its weights, checkpoints, samples, logs and dataset manifest stay, and `photos_deleted_at` is set; the task can no longer be retried. Repeating it is harmless. KILN_PHOTO_RETENTION_HOURS does this by itself.",
        tags: ['Training'],
        params: TaskIdParams,
        response: { 200: Type.Ref(TrainingTask), ...errorResponses({ byId: true, transition: true }) },
      },
    },
    async (request) => toTrainingTask(await tasks.deletePhotos(request.params.task_id, request.principal)),
  );

  app.get(
    '/:task_id/webhooks',
    {
      schema: {
        summary: 'List Webhook Deliveries',
        tags: ['Training'],
        params: TaskIdParams,
        response: { 200: Type.Array(WebhookDelivery), ...errorResponses({ byId: true }) },
      },
    },
    async (request) => {
      const task = await tasks.get(request.params.task_id, request.principal);
      return deps.store.db.selectFrom('webhook_deliveries').selectAll().where('task_id', '=', task.id).orderBy('created_at').orderBy('id').execute();
    },
  );

  app.get(
    '/:task_id/queue',
    {
      schema: {
        summary: 'Queue Place',
        description:
          'Where a PENDING or QUEUED task stands: the stage it waits for, how many jobs start before it, and how many stages its tenant runs against the cap. The event stream sends the same as `queue` events while the task waits.',
        tags: ['Training'],
        params: TaskIdParams,
        response: { 200: QueuePlace, ...errorResponses({ byId: true }) },
      },
    },
    async (request) => {
      const task = await tasks.get(request.params.task_id, request.principal);
      return taskQueuePlace(deps.taskStore, deps.generationStore, task, deps.config.maxRunningPerTenant);
    },
  );

  app.get(
    '/:task_id/runs',
    {
      schema: {
        summary: 'List Stage Runs',
        description:
          'Every run of the task’s stages, oldest first: which worker ran which attempt on what kind of slot, for how long, and how it ended. A rescued run ends `lease_expired`.',
        tags: ['Training'],
        params: TaskIdParams,
        response: { 200: Type.Array(StageRun), ...errorResponses({ byId: true }) },
      },
    },
    async (request) => {
      const task = await tasks.get(request.params.task_id, request.principal);
      return (await runsOf(deps.store.db, task.id)).map((run) => ({
        ...run,
        seconds: run.ended_at === null ? null : (Date.parse(run.ended_at) - Date.parse(run.started_at)) / 1000,
      }));
    },
  );
};
