import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { IDEMPOTENCY_KEY_HOURS, IdempotencyKeyReused, type IdempotencyKey } from '../store/idempotency.js';
import { RequestValidationError } from './errors.js';

/** The request header of the creates that take one, as their schema declares it. */
export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[!-~]+$',
      description: `A key of the client's choosing (a UUID, say), printable ASCII without spaces. Sent again by the same tenant with the same body, the request returns what the first one created, with the header Idempotent-Replayed: true, instead of creating it twice; with another body it is a 422. Keys are kept for ${IDEMPOTENCY_KEY_HOURS} hours, and until the task or generation is deleted. A network error or timeout can then be retried safely.`,
    }),
  ),
});

/** JSON with keys in a fixed order, so that one body always has one digest. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/**
 * A create that an Idempotency-Key makes safe to repeat: a key seen before returns the row its
 * first request made (without validating again: the first request passed); a new key is
 * claimed in the insert's transaction, so two concurrent requests with it make one row.
 */
export async function createOnce<Row>(
  request: FastifyRequest,
  reply: FastifyReply,
  operation: IdempotencyKey['operation'],
  steps: { replayed(key: IdempotencyKey): Promise<Row | undefined>; validate(): Promise<void>; create(key?: IdempotencyKey): Promise<{ row: Row; replayed: boolean }> },
): Promise<Row> {
  const header = request.headers['idempotency-key'];
  const key: IdempotencyKey | undefined =
    typeof header === 'string'
      ? {
          tenantId: request.principal.tenantId,
          operation,
          key: header,
          requestSha256: createHash('sha256')
            .update(JSON.stringify(canonical(request.body)))
            .digest('hex'),
        }
      : undefined;
  try {
    const earlier = key && (await steps.replayed(key));
    if (earlier) {
      reply.header('idempotent-replayed', 'true');
      return earlier;
    }
    await steps.validate();
    const { row, replayed } = await steps.create(key);
    if (replayed) reply.header('idempotent-replayed', 'true');
    return row;
  } catch (err) {
    if (err instanceof IdempotencyKeyReused) throw new RequestValidationError([{ loc: ['header', 'idempotency-key'], msg: err.message, type: 'value_error' }]);
    throw err;
  }
}
