import { createHmac, randomBytes } from 'node:crypto';
import type { Config } from '../config.js';
import { ensureSecretFile } from '../auth/secrets.js';

const PREFIX = 'whsec_';

/** The signing secret: KILN_WEBHOOK_SECRET, or one created in the data dir on first use. */
export function webhookSecret(config: Config): string {
  const secret = config.webhookSecret || ensureSecretFile(config.dataDir, 'webhook-secret', () => PREFIX + randomBytes(24).toString('base64'));
  if (!secret.startsWith(PREFIX)) throw new Error('KILN_WEBHOOK_SECRET must start with whsec_ followed by base64');
  return secret;
}

/**
 * Standard Webhooks headers for one delivery: the signature is HMAC-SHA256 over
 * `<id>.<timestamp>.<body>` with the base64-decoded secret, sent as `v1,<base64>`.
 */
export function signedHeaders(secret: string, id: string, timestampSeconds: number, body: string): Record<string, string> {
  const key = Buffer.from(secret.slice(PREFIX.length), 'base64');
  const signature = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': `v1,${signature}`,
  };
}
