import fs from 'node:fs';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { isTerminal, type TrainingStatus } from '../../engine/lifecycle.js';
import { taskPaths } from '../../training/spec.js';
import { readEventsFrom } from '../../training/task-events.js';
import { HTTPError, HTTPValidationError } from '../schemas/errors.js';
import { TaskIdParams } from '../schemas/training.js';
import type { ApiDeps } from '../deps.js';

const errors = { 401: Type.Ref(HTTPError), 404: Type.Ref(HTTPError), 422: Type.Ref(HTTPValidationError) };
const LOG_CHUNK = 1024 * 1024;
const SSE_POLL_MS = 250;

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
        querystring: Type.Object({ offset: Type.Integer({ minimum: 0, default: 0 }) }),
        response: { 200: LogChunk, ...errors },
      },
    },
    async (request) => {
      const task = await deps.tasks.get(request.params.task_id, request.principal);
      const file = taskPaths(task.training_folder).trainerLog;
      const offset = request.query.offset;
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
      return { offset, next_offset: next, size, text, complete: isTerminal(task.status as TrainingStatus) && next >= size };
    },
  );

  app.get(
    '/:task_id/metrics',
    {
      schema: {
        summary: 'Loss Curve',
        tags: ['Live'],
        params: TaskIdParams,
        response: { 200: Type.Object({ task_id: Type.String(), points: Type.Array(LossPoint) }), ...errors },
      },
    },
    async (request) => {
      const task = await deps.tasks.get(request.params.task_id, request.principal);
      const { events } = readEventsFrom(taskPaths(task.training_folder).events, 0);
      const points = events
        .filter((e) => e.type === 'step')
        .map((e) => ({ step: e.step as number, loss: (e.loss as number | null) ?? null, lr: e.lr as number, seconds_per_step: e.seconds_per_step as number, time: e.time as string }));
      return { task_id: task.id, points };
    },
  );

  app.get(
    '/:task_id/events',
    {
      schema: {
        summary: 'Stream Training Events (SSE)',
        description:
          'Server-Sent Events: `status` whenever status, step or progress change, then every trainer event as its own type (`step`, `sample`, `checkpoint`, `log`, …) in order, with `id` = its sequence number. Ends with `end` once the task is finished. Send Last-Event-ID to resume.',
        tags: ['Live'],
        params: TaskIdParams,
      },
    },
    async (request, reply) => {
      const first = await deps.tasks.get(request.params.task_id, request.principal);
      const eventsFile = taskPaths(first.training_folder).events;
      const resumeAfter = Number(request.headers['last-event-id'] ?? 0) || 0;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': String(request.id) });
      const send = (event: string, data: unknown, id?: number) => res.write(`${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      let offset = 0;
      let lastStatus = '';
      let closed = false;
      request.raw.on('close', () => (closed = true));
      while (!closed) {
        const row = await deps.taskStore.get(first.id);
        if (!row) break;
        const snapshot = `${row.status}:${row.current_step}:${row.progress}`;
        if (snapshot !== lastStatus) {
          lastStatus = snapshot;
          send('status', { status: row.status, current_step: row.current_step, total_steps: row.total_steps, progress: row.progress, eta_seconds: row.eta_seconds, error_message: row.error_message });
        }
        const batch = readEventsFrom(eventsFile, offset);
        offset = batch.offset;
        for (const e of batch.events) if ((e.seq as number) > resumeAfter) send(String(e.type), e, e.seq as number);
        // Terminal and drained: a worker writes its last events before the final status.
        if (isTerminal(row.status as TrainingStatus) && batch.events.length === 0 && row.lease_owner === null) {
          send('end', { status: row.status });
          break;
        }
        await new Promise((r) => setTimeout(r, SSE_POLL_MS));
      }
      res.end();
    },
  );
};
