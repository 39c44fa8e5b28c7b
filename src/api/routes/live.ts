import fs from 'node:fs';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { isTerminal } from '../../domain/lifecycle.js';
import { taskPaths } from '../../domain/task-folder.js';
import { taskQueuePlace } from '../../engine/queue-place.js';
import { readEventsFrom } from '../../python/event-log.js';
import { TaskIdParams } from '../../domain/schemas/training.js';
import type { ApiDeps } from '../deps.js';
import { errorResponses, eventStream } from '../responses.js';
import { streamJob } from '../sse.js';

const LOG_CHUNK = 1024 * 1024;

const LogChunk = Type.Object(
  {
    offset: Type.Integer(),
    next_offset: Type.Integer({ description: 'Pass as ?offset= to continue' }),
    size: Type.Integer({ description: 'Bytes in the log so far' }),
    text: Type.String(),
    complete: Type.Boolean({ description: 'True once the task is finished and the whole log was read' }),
  },
  { title: 'LogChunk' },
);

const LossPoint = Type.Object({ step: Type.Integer(), loss: Type.Union([Type.Number(), Type.Null()]), lr: Type.Number(), seconds_per_step: Type.Number(), time: Type.String() });

/** Live views of a running task: its event stream, its full log, its loss curve. */
export const liveRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, deps) => {
  app.get(
    '/:task_id/logs',
    {
      schema: {
        summary: 'Read Training Log',
        tags: ['Live'],
        params: TaskIdParams,
        querystring: Type.Object({ offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })) }),
        response: { 200: LogChunk, ...errorResponses({ byId: true, query: true }) },
      },
    },
    async (request) => {
      const task = await deps.tasks.get(request.params.task_id, request.principal);
      const file = taskPaths(task.training_folder).trainerLog;
      // Ajv has filled in the default; the type cannot know that.
      const offset = request.query.offset ?? 0;
      let size = 0;
      let text = '';
      try {
        const fd = fs.openSync(file, 'r');
        try {
          size = fs.fstatSync(fd).size;
          const length = Math.max(0, Math.min(LOG_CHUNK, size - offset));
          const buf = Buffer.alloc(length);
          if (length) fs.readSync(fd, buf, 0, length, offset);
          text = buf.toString('utf8');
        } finally {
          fs.closeSync(fd);
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      const next = Math.min(size, offset + Buffer.byteLength(text));
      return { offset, next_offset: next, size, text, complete: isTerminal(task.status) && next >= size };
    },
  );

  app.get(
    '/:task_id/metrics',
    {
      schema: {
        summary: 'Loss Curve',
        tags: ['Live'],
        params: TaskIdParams,
        response: { 200: Type.Object({ task_id: Type.String(), points: Type.Array(LossPoint) }), ...errorResponses({ byId: true }) },
      },
    },
    async (request) => {
      const task = await deps.tasks.get(request.params.task_id, request.principal);
      const { events } = readEventsFrom(taskPaths(task.training_folder).events, 0);
      const points = events
        .filter((e) => e.type === 'step')
        .map((e) => ({
          step: e.step as number,
          loss: (e.loss as number | null) ?? null,
          lr: e.lr as number,
          seconds_per_step: e.seconds_per_step as number,
          time: e.time as string,
        }));
      return { task_id: task.id, points };
    },
  );

  app.get(
    '/:task_id/events',
    {
      schema: {
        summary: 'Stream Training Events (SSE)',
        description:
          'Server-Sent Events: `status` whenever status, step or progress change; `queue` (a QueuePlace, as GET /training/{id}/queue) while the task waits for a stage, whenever its place changes, and once more when it stops waiting; then every trainer event as its own type (`step`, `sample`, `checkpoint`, `log`, …) in order, with `id` = its sequence number. Ends with `end` once the task is finished. Send Last-Event-ID to resume.',
        tags: ['Live'],
        params: TaskIdParams,
        response: { 200: eventStream, ...errorResponses({ byId: true }) },
      },
    },
    async (request, reply) => {
      const task = await deps.tasks.get(request.params.task_id, request.principal);
      await streamJob(request, reply, {
        read: () => deps.taskStore.get(task.id),
        eventsFile: taskPaths(task.training_folder).events,
        status: (row) => ({
          status: row.status,
          current_step: row.current_step,
          total_steps: row.total_steps,
          progress: row.progress,
          eta_seconds: row.eta_seconds,
          error_message: row.error_message,
        }),
        // A new status line for a new status, step or progress, not for every ETA update.
        snapshot: (row) => `${row.status}:${row.current_step}:${row.progress}`,
        over: (row) => isTerminal(row.status) && row.lease_owner === null,
        queue: (row) => taskQueuePlace(deps.taskStore, deps.generationStore, row, deps.config.maxRunningPerTenant),
      });
    },
  );
};
