import { Type, type TSchema } from '@sinclair/typebox';
import { HTTPError, HTTPValidationError } from '../domain/schemas/errors.js';

/** The words the OpenAPI document gives each error status a route may answer. */
const REASONS = {
  400: 'Bad Request: the request is malformed in a way no single field names',
  401: 'Not authenticated: no Bearer token, or one that is expired or not valid here',
  403: 'Forbidden: this needs the training:admin scope, or the signed link is altered, for another file or expired',
  404: "Not Found: no such task or generation, or another tenant's",
  409: 'Conflict: the current status does not allow this',
  413: 'Content Too Large: the body or an uploaded file is over the configured limit, which the detail states',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable: Content-Range gives the size',
  422: 'Validation Error',
  429: 'Too Many Requests: rate limited, try again after Retry-After seconds',
  503: 'Service Unavailable: the database cannot be reached, try again after Retry-After seconds',
  507: "Insufficient Storage: the server's disk is below the free space it keeps (KILN_MIN_FREE_DISK_MB), try again after Retry-After seconds",
} as const;

export type ErrorStatus = keyof typeof REASONS;

const RETRY_AFTER = { 'retry-after': { type: 'integer', description: 'Seconds to wait before trying again' } };

/** One error status as a response schema: FastAPI's body for it, its reason, and its headers. */
function errorResponse(status: ErrorStatus): TSchema {
  const options = { description: REASONS[status], ...(status === 429 || status === 503 || status === 507 ? { headers: RETRY_AFTER } : {}) };
  return status === 422 ? Type.Ref(HTTPValidationError, options) : Type.Ref(HTTPError, options);
}

/** What a route does that decides the errors it can answer; every route is behind the Bearer check (401). */
export interface RouteTraits {
  /** Names a task or generation in its path: 404 when unknown (or another tenant's), 422 when malformed. */
  byId?: boolean;
  /** Has query parameters: 422 when one is malformed. */
  query?: boolean;
  /** Has path parameters that name nothing that can be missing: 422 when one is malformed. */
  path?: boolean;
  /**
   * Reads a body: 413 over its limit, 415 in another media type, and for JSON (every POST and
   * PATCH may be sent one) 422 when it is malformed.
   */
  body?: 'json' | 'multipart';
  /** Moves a status: 409 when the current one does not allow it. */
  transition?: boolean;
  /** Needs the admin scope, for all it does or for some fields: 403. */
  admin?: boolean;
  /** Counted by the KILN_RATE_LIMIT_* limits: 429. */
  rateLimited?: boolean;
  /** Reads or writes the database (the default): 503 while it is down. */
  database?: boolean;
  /** Opens to a signed link, which may be refused: 403. */
  signedLink?: boolean;
  /** Streams a file and honours Range: 416. */
  ranges?: boolean;
  /** Can be wrong in a way no field names: 400. */
  badRequest?: boolean;
  /** Stores what it is sent in the data dir: 507 while its disk is short of space. */
  storesFiles?: boolean;
}

/** The statuses a route with these traits can answer besides its successes, in order. */
export function errorStatuses(traits: RouteTraits): ErrorStatus[] {
  const statuses = new Set<ErrorStatus>([401]);
  if (traits.badRequest) statuses.add(400);
  if (traits.admin || traits.signedLink) statuses.add(403);
  if (traits.byId) statuses.add(404).add(422);
  if (traits.transition) statuses.add(409);
  if (traits.body) statuses.add(413).add(415);
  if (traits.body === 'json') statuses.add(422);
  if (traits.ranges) statuses.add(416);
  if (traits.query || traits.path) statuses.add(422);
  if (traits.rateLimited) statuses.add(429);
  if (traits.database ?? true) statuses.add(503);
  if (traits.storesFiles) statuses.add(507);
  return [...statuses].sort((a, b) => a - b);
}

/** A route's error responses for its `schema.response`, beside its own success responses. */
export function errorResponses(traits: RouteTraits): Record<number, TSchema> {
  return Object.fromEntries(errorStatuses(traits).map((status) => [status, errorResponse(status)]));
}

/** A success whose body is a file in one of these media types, streamed as it is stored. */
export function fileResponse(description: string, mediaTypes: string[]): TSchema {
  const content = Object.fromEntries(mediaTypes.map((type) => [type, { schema: { type: 'string', format: 'binary' } }]));
  return Type.Unsafe({ description, content });
}

/** One Server-Sent Event as a client's parser hands it over (before OpenAPI 3.2, `schema` describes each event). */
const ServerSentEvent = {
  type: 'object',
  required: ['data'],
  properties: {
    event: { type: 'string', description: 'status, then each job event by its own type, and end last' },
    data: { type: 'string', contentMediaType: 'application/json', description: 'The event as JSON' },
    id: { type: 'string', description: 'Sequence number of a job event; send it back as Last-Event-ID to resume' },
  },
};

/** The success of an SSE route: events until the job is over. */
export const eventStream = Type.Unsafe({
  description: 'Server-Sent Events until the job is over',
  content: { 'text/event-stream': { schema: ServerSentEvent } },
});

/** A success with no body (a deletion): 204, and no content in the OpenAPI document. */
export const NoContent = Type.Null({ description: 'Deleted; no body' });
