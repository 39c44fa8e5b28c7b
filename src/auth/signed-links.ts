import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Config } from '../config.js';
import { ensureSecretFile } from './secrets.js';

/**
 * Expiring links to one artifact that work without a bearer header: an `<img src>` cannot send
 * one, and people paste download links into other tools. The signature is HMAC-SHA256 over the
 * expiry, the task and the artifact path, with a key of its own (not the JWT secret, which under
 * JWKS or PEM auth Kiln does not have), so a link opens that one file until it expires and
 * nothing else.
 */
export interface SignedLinks {
  /** `?exp=<unix seconds>&sig=<hex>` for the artifact, good for the configured time. */
  query(taskId: string, artifactPath: string, nowMs?: number): string;
  /** Why a link is refused, or null when it is good. */
  refusal(taskId: string, artifactPath: string, exp: string, sig: string, nowMs?: number): string | null;
}

const HEX_SHA256 = /^[0-9a-f]{64}$/;

export function createSignedLinks(config: Config): SignedLinks {
  const secret = config.urlSigningSecret || ensureSecretFile(config.dataDir, 'url-signing-secret', () => randomBytes(32).toString('hex'));
  const key = Buffer.from(secret, 'utf8');
  const mac = (taskId: string, artifactPath: string, exp: number) => createHmac('sha256', key).update(`${exp}\n${taskId}\n${artifactPath}`).digest();
  return {
    query(taskId, artifactPath, nowMs = Date.now()) {
      const exp = Math.floor(nowMs / 1000) + config.signedLinkTtlSeconds;
      return `?exp=${exp}&sig=${mac(taskId, artifactPath, exp).toString('hex')}`;
    },
    refusal(taskId, artifactPath, exp, sig, nowMs = Date.now()) {
      if (!/^\d{1,12}$/.test(exp) || !HEX_SHA256.test(sig)) return 'Signed link is malformed';
      // The signature first: an altered expiry must not learn whether it would have been late.
      if (!timingSafeEqual(mac(taskId, artifactPath, Number(exp)), Buffer.from(sig, 'hex'))) return 'Signed link is invalid';
      if (Number(exp) * 1000 <= nowMs) return 'Signed link has expired';
      return null;
    },
  };
}
