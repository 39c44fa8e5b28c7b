import type { FastifyReply, FastifyRequest } from 'fastify';
import type { QueuePlace } from '../domain/schemas/queue.js';
import { readEventsFrom } from '../python/event-log.js';
import { databaseUnavailable } from '../store/outage.js';

/** How often a stream looks at the row and the events file. */
const SSE_POLL_MS = 250;
const SSE_OUTAGE_RETRY_MS = 2000;
/** How often a stream asks where a waiting job stands: a count per stream, so less often than the row. */
const QUEUE_POLL_MS = 2000;

export interface JobStream<Row> {
  /** The row as it stands now; undefined once it is gone. */
  read(): Promise<Row | undefined>;
  eventsFile: string;
  /** What the `status` event says. */
  status(row: Row): Record<string, unknown>;
  /** A new `status` event is sent whenever this changes. */
  snapshot(row: Row): string;
  /** Finished, and no worker holds it any more (so its last events are written). */
  over(row: Row): boolean;
  /** Where the job stands in the queue; sent as `queue` while it waits, and once more when it stops waiting. */
  queue?: (row: Row) => Promise<QueuePlace>;
}

/**
 * Server-Sent Events for one job: `status` whenever the row's summary changes, then every event
 * of its events file as its own type with `id` = its sequence number, and `end` once the job is
 * over and its events are drained. A client resumes with Last-Event-ID.
 */
export async function streamJob<Row>(request: FastifyRequest, reply: FastifyReply, job: JobStream<Row>): Promise<void> {
  const resumeAfter = Number(request.headers['last-event-id'] ?? 0) || 0;
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': String(request.id) });
  const send = (event: string, data: unknown, id?: number) => res.write(`${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  let offset = 0;
  let lastStatus = '';
  let lastPlace: QueuePlace | undefined;
  let placeAt = 0;
  let closed = false;
  request.raw.on('close', () => (closed = true));
  while (!closed) {
    const row = await readThroughOutage(job);
    if (row === null) {
      // The database is unavailable: keep the stream open and look again, as a client would.
      res.write(': database unavailable, waiting\n\n');
      await new Promise((r) => setTimeout(r, SSE_OUTAGE_RETRY_MS));
      continue;
    }
    if (!row) break;
    const snapshot = job.snapshot(row);
    const statusChanged = snapshot !== lastStatus;
    if (statusChanged) {
      lastStatus = snapshot;
      send('status', job.status(row));
    }
    // Asked again on each status change, and every QUEUE_POLL_MS while the job waits.
    const stillWaiting = lastPlace?.waiting_for != null;
    if (job.queue && (statusChanged || (stillWaiting && Date.now() - placeAt >= QUEUE_POLL_MS))) {
      placeAt = Date.now();
      const place = await queueThroughOutage(job.queue, row);
      if (place && JSON.stringify(place) !== JSON.stringify(lastPlace) && (place.waiting_for !== null || stillWaiting)) send('queue', place);
      if (place) lastPlace = place;
    }
    const batch = readEventsFrom(job.eventsFile, offset);
    offset = batch.offset;
    for (const e of batch.events) if ((e.seq as number) > resumeAfter) send(String(e.type), e, e.seq as number);
    // Over and drained: a worker writes its last events before the final status.
    if (job.over(row) && batch.events.length === 0) {
      send('end', { status: job.status(row).status });
      break;
    }
    await new Promise((r) => setTimeout(r, SSE_POLL_MS));
  }
  res.end();
}

/** The job's place, or undefined while the database is unavailable (the next poll asks again). */
async function queueThroughOutage<Row>(queue: (row: Row) => Promise<QueuePlace>, row: Row): Promise<QueuePlace | undefined> {
  try {
    return await queue(row);
  } catch (err) {
    if (databaseUnavailable(err)) return undefined;
    throw err;
  }
}

/** The row, undefined once it is gone, or null while the database is unavailable. */
async function readThroughOutage<Row>(job: JobStream<Row>): Promise<Row | undefined | null> {
  try {
    return await job.read();
  } catch (err) {
    if (databaseUnavailable(err)) return null;
    throw err;
  }
}
