import type { FastifyReply, FastifyRequest } from 'fastify';
import { AuthError, type TokenVerifier } from '../auth/jwt.js';
import type { Principal } from '../auth/principal.js';
import type { SignedLinks } from '../auth/signed-links.js';
import { HttpError } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
  interface FastifyContextConfig {
    /** The route serves one artifact and opens to a signed link (`?exp=&sig=`) as well as a token. */
    signedLink?: boolean;
  }
}

/**
 * Whoever holds a good signed link: it may read every tenant's tasks, but it only reaches the
 * one route that opens to links, and the signature names the task and the file.
 */
const LINK_HOLDER: Principal = { subject: 'signed-link', tenantId: null, admin: true };

const CHALLENGE = { 'www-authenticate': 'Bearer' };

/**
 * An onRequest hook: a valid Bearer JWT or 401, before any body is read. On a route that opens
 * to signed links, a request without the header may bring one instead: 403 when it is altered,
 * another file's or expired.
 */
export function requireBearer(verifier: TokenVerifier, links: SignedLinks) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization;
    if (!header && request.routeOptions.config.signedLink) {
      const { exp, sig } = request.query as { exp?: unknown; sig?: unknown };
      if (exp !== undefined || sig !== undefined) {
        const { task_id: taskId, '*': artifactPath } = request.params as { task_id: string; '*': string };
        // A repeated parameter arrives as an array: malformed, like a missing one.
        const text = (v: unknown) => (typeof v === 'string' ? v : '');
        const refusal = links.refusal(taskId, artifactPath, text(exp), text(sig));
        if (refusal) throw new HttpError(403, refusal);
        request.principal = LINK_HOLDER;
        return;
      }
    }
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
