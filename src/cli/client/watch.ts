import type { QueuePlace } from '../../domain/schemas/queue.js';
import type { TrainingTask } from '../../domain/schemas/training.js';
import type { KilnClient } from './http.js';
import { ProgressRenderer } from './progress.js';

export const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);
/** Statuses in which a task waits for a stage and has a place in the queue. */
export const WAITING = new Set(['PENDING', 'QUEUED']);
const POLL_MS = 2000;

export interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

/** Splits a text/event-stream body into events; ignores comments and keeps only `event` and `data`. */
export async function* readSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let cut: number;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = /^event: ?(.*)$/m.exec(block)?.[1] ?? 'message';
      const data = block
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n');
      if (data) yield { event, data: JSON.parse(data) as Record<string, unknown> };
    }
  }
}

/** Follows the event stream; resolves true at `end`, false if the stream broke off before it. */
async function followEvents(client: KilnClient, id: string, progress: ProgressRenderer): Promise<boolean> {
  let status = '';
  try {
    const res = await client.request(`/api/v1/training/${id}/events`, { headers: { accept: 'text/event-stream' } });
    for await (const { event, data } of readSse(res.body as unknown as AsyncIterable<Uint8Array>)) {
      if (event === 'status') {
        // A new status has its own place in the queue, or none; the `queue` event after it says which.
        const ahead = data.status === status ? {} : { ahead: null };
        status = String(data.status);
        progress.update({
          ...ahead,
          status,
          step: Number(data.current_step),
          total: Number(data.total_steps),
          progress: Number(data.progress),
          etaSeconds: (data.eta_seconds as number | null) ?? null,
        });
      } else if (event === 'queue') {
        progress.update({ ahead: (data.position as number | null) ?? null });
      } else if (event === 'step') {
        const change = { step: Number(data.step), loss: (data.loss as number | null) ?? null };
        progress.update(typeof data.total === 'number' ? { ...change, total: data.total } : change);
      } else if (event === 'end') {
        return true;
      }
    }
  } catch {
    // A dropped stream is not the task failing: polling carries on from here.
  }
  return false;
}

/**
 * Watches a task until it finishes and resolves to its final state: the SSE stream first,
 * polling GET /training/{id} if that stream drops (a proxy timeout, a restarted API node).
 */
export async function watchTask(client: KilnClient, id: string, progress = new ProgressRenderer()): Promise<TrainingTask> {
  try {
    if (!(await followEvents(client, id, progress))) {
      for (;;) {
        const task = await client.json<TrainingTask>('GET', `/api/v1/training/${id}`);
        const ahead = WAITING.has(task.status) ? (await client.json<QueuePlace>('GET', `/api/v1/training/${id}/queue`)).position : null;
        progress.update({ status: task.status, step: task.current_step, total: task.total_steps, progress: task.progress, etaSeconds: task.eta_seconds, ahead });
        if (TERMINAL.has(task.status)) return task;
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    }
    return await client.json<TrainingTask>('GET', `/api/v1/training/${id}`);
  } finally {
    progress.finish();
  }
}
