import type { FastifyReply, FastifyRequest } from 'fastify';
import { AuthError, type TokenVerifier } from '../auth/jwt.js';
import type { Principal } from '../auth/principal.js';
import { HttpError } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

const CHALLENGE = { 'www-authenticate': 'Bearer' };

/** An onRequest hook: a valid Bearer JWT or 401, before any body is read. */
export function requireBearer(verifier: TokenVerifier) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization;
    if (!header) throw new HttpError(401, 'Not authenticated', CHALLENGE);
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new HttpError(401, 'Invalid authentication credentials', CHALLENGE);
    try {
      request.principal = await verifier.verify(match[1]);
    } catch (err) {
      if (err instanceof AuthError) throw new HttpError(401, err.message, CHALLENGE);
      throw err;
    }
  };
}
