import type { FastifyError, FastifyInstance } from 'fastify';
import { databaseUnavailable } from '../store/outage.js';
import { NotPermitted, TaskConflict, TaskNotFound } from '../tasks/errors.js';
import { describeBytes } from '../util/bytes.js';
import { RouteMethods } from './route-methods.js';
import { plural } from '../util/words.js';

/** One entry of FastAPI's 422 body. `loc` starts with body, query or path. */
export interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** Raised by handlers for checks a schema cannot express (SSRF, transforms, captioning). */
export class RequestValidationError extends Error {
  constructor(readonly issues: ValidationIssue[]) {
    super(issues.map((i) => `${i.loc.join('.')}: ${i.msg}`).join('; '));
  }
}

/** An error with FastAPI's `{"detail": "..."}` body. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }
}

/** The `params` toIssue reads, each as Ajv fills it for the keyword that sets it. */
interface AjvParams {
  missingProperty: string; // required
  type: string | string[]; // type
  allowedValues: (string | number | boolean | null)[]; // enum: the schemas enumerate JSON scalars
  limit: number; // minimum, maximum and their exclusive forms; min/max Length and Items
  pattern: string; // pattern
  format: string; // format
}

interface AjvError {
  instancePath: string;
  keyword: string;
  params: AjvParams;
  message?: string;
}

const LOCATION: Record<string, string> = { body: 'body', querystring: 'query', params: 'path', headers: 'header' };

function pointerToLoc(pointer: string): (string | number)[] {
  if (!pointer) return [];
  return pointer
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

const TYPE_NAMES: Record<string, [string, string]> = {
  integer: ['int_type', 'Input should be a valid integer'],
  number: ['float_type', 'Input should be a valid number'],
  string: ['string_type', 'Input should be a valid string'],
  boolean: ['bool_type', 'Input should be a valid boolean'],
  array: ['list_type', 'Input should be a valid list'],
  object: ['model_attributes_type', 'Input should be a valid dictionary or object to extract fields from'],
};

/** Ajv's error in pydantic v2's words, so clients parsing FastAPI's 422s keep working. */
function toIssue(err: AjvError, where: string): ValidationIssue | null {
  const loc = [where, ...pointerToLoc(err.instancePath)];
  const p = err.params;
  switch (err.keyword) {
    case 'required':
      return { loc: [...loc, p.missingProperty], msg: 'Field required', type: 'missing' };
    case 'type': {
      const wanted = String(Array.isArray(p.type) ? p.type.find((t: string) => t !== 'null') : p.type).split(',')[0];
      const [type, msg] = TYPE_NAMES[wanted] ?? ['type_error', `Input should be of type ${wanted}`];
      return { loc, msg, type };
    }
    case 'enum': {
      const values = p.allowedValues.filter((v) => v !== null).map((v) => (typeof v === 'string' ? `'${v}'` : String(v)));
      const last = values.pop();
      const list = values.length ? `${values.join(', ')} or ${last}` : String(last);
      return { loc, msg: `Input should be ${list}`, type: 'enum' };
    }
    case 'minimum':
      return { loc, msg: `Input should be greater than or equal to ${p.limit}`, type: 'greater_than_equal' };
    case 'exclusiveMinimum':
      return { loc, msg: `Input should be greater than ${p.limit}`, type: 'greater_than' };
    case 'maximum':
      return { loc, msg: `Input should be less than or equal to ${p.limit}`, type: 'less_than_equal' };
    case 'exclusiveMaximum':
      return { loc, msg: `Input should be less than ${p.limit}`, type: 'less_than' };
    case 'minLength':
      return { loc, msg: `String should have at least ${plural(p.limit, 'character')}`, type: 'string_too_short' };
    case 'maxLength':
      return { loc, msg: `String should have at most ${plural(p.limit, 'character')}`, type: 'string_too_long' };
    case 'minItems':
      return { loc, msg: `List should have at least ${plural(p.limit, 'item')}`, type: 'too_short' };
    case 'maxItems':
      return { loc, msg: `List should have at most ${plural(p.limit, 'item')}`, type: 'too_long' };
    case 'pattern':
      return { loc, msg: `String should match pattern '${p.pattern}'`, type: 'string_pattern_mismatch' };
    case 'format':
      if (p.format === 'uuid') return { loc, msg: 'Input should be a valid UUID', type: 'uuid_parsing' };
      if (p.format === 'uri') return { loc, msg: 'Input should be a valid URL', type: 'url_parsing' };
      return { loc, msg: `Input should be a valid ${p.format}`, type: `${p.format}_parsing` };
    case 'anyOf':
    case 'oneOf':
    case 'if':
      return null; // the branch errors beside it say what was wrong
    default:
      return { loc, msg: err.message ?? 'Invalid value', type: 'value_error' };
  }
}

export function issuesFromAjv(errors: AjvError[], context: string): ValidationIssue[] {
  const where = LOCATION[context] ?? context;
  const seen = new Set<string>();
  const issues: ValidationIssue[] = [];
  for (const err of errors) {
    const issue = toIssue(err, where);
    if (!issue) continue;
    const key = JSON.stringify(issue.loc) + issue.type;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}

const STATUS_DETAIL: Record<number, string> = {
  400: 'Bad Request',
  401: 'Not authenticated',
  403: 'Not enough permissions',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Request body is too large',
  415: 'Unsupported Media Type',
};

/**
 * Every error leaves in FastAPI's shape: 422 `{"detail":[{loc,msg,type}]}` for validation,
 * `{"detail":"…"}` otherwise. 5xx messages are logged, never sent. Install before any route:
 * the 405 answer needs to see every route as it is added.
 */
export function installErrorHandlers(app: FastifyInstance): void {
  const routes = RouteMethods.collect(app);
  app.setErrorHandler((error: FastifyError & { validation?: AjvError[]; validationContext?: string }, request, reply) => {
    const unavailable = databaseUnavailable(error);
    if (unavailable) {
      // Not the client's fault and not a bug: the same request succeeds once the database is back.
      request.log.warn({ reason: unavailable.reason }, 'database unavailable');
      return reply
        .code(503)
        .header('retry-after', String(unavailable.retryAfterSeconds))
        .send({ detail: `Service unavailable: ${unavailable.reason}. Retry in ${unavailable.retryAfterSeconds} s.` });
    }
    if (error instanceof RequestValidationError) return reply.code(422).send({ detail: error.issues });
    if (error instanceof HttpError) return reply.code(error.statusCode).headers(error.headers).send({ detail: error.detail });
    if (error instanceof TaskNotFound) return reply.code(404).send({ detail: error.message });
    if (error instanceof TaskConflict) return reply.code(409).send({ detail: error.message });
    if (error instanceof NotPermitted) return reply.code(403).send({ detail: error.message });
    if (error.validation) {
      return reply.code(422).send({ detail: issuesFromAjv(error.validation, error.validationContext ?? 'body') });
    }
    // Only the body parser's errors are the client's: a SyntaxError from anywhere else is a stored
    // value that does not parse, and falls through to the 500 below.
    if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
      const msg = error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'Field required' : `JSON decode error: ${error.message}`;
      const type = error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'missing' : 'json_invalid';
      return reply.code(422).send({ detail: [{ loc: ['body'], msg, type }] });
    }
    const status = error.statusCode ?? 500;
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
      return reply.code(500).send({ detail: 'Internal Server Error' });
    }
    const detail =
      error.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? `Request body is larger than the limit of ${describeBytes(request.routeOptions.bodyLimit)}`
        : (STATUS_DETAIL[status] ?? error.message);
    return reply.code(status).send({ detail });
  });
  // Routing is settled before the token or the body is read, as FastAPI settles it: a request no
  // route takes is a 404 or 405, never a 400, 401 or 415 about a header or body nothing wanted.
  app.addHook('onRequest', async (request, reply) => {
    if (request.is404 || RouteMethods.missesParameter(request)) return routes.answerUnrouted(request, reply);
  });
  app.setNotFoundHandler((request, reply) => routes.answerUnrouted(request, reply));
}
