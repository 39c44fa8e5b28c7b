import fs from 'node:fs';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { SignJWT, createRemoteJWKSet, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Config } from '../config.js';
import { ensureSecretFile, randomSecret } from './secrets.js';
import { ADMIN_SCOPE, type Principal } from './principal.js';

export class AuthError extends Error {}

export interface TokenVerifier {
  verify(token: string): Promise<Principal>;
  /** Present only with an HS256 secret: asymmetric setups mint tokens elsewhere. */
  mint?: (opts: MintOptions) => Promise<string>;
  /** True when the secret was generated into the data dir (the embedded default). */
  generated: boolean;
}

/** The claim a platform sets in its tokens to cap a tenant's training slot time per month. */
export const MONTHLY_HOURS_CLAIM = 'kiln_monthly_training_hours';

export interface MintOptions {
  tenantId: string | null;
  admin?: boolean;
  monthlyTrainingHours?: number;
  ttlSeconds?: number;
  subject?: string;
}

/** Parses `1h`, `30m`, `7d`, `3600` into seconds. */
export function parseTtl(text: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!m) throw new Error(`bad ttl "${text}": use e.g. 3600, 30m, 1h or 7d`);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

function principalOf(payload: JWTPayload): Principal {
  const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
  const tenant = payload.tenant_id;
  const hours = payload[MONTHLY_HOURS_CLAIM];
  return {
    subject: payload.sub ?? 'anonymous',
    tenantId: typeof tenant === 'string' && tenant !== '' ? tenant : null,
    admin: scopes.includes(ADMIN_SCOPE),
    ...(typeof hours === 'number' && Number.isFinite(hours) && hours >= 0 ? { monthlyTrainingHours: hours } : {}),
  };
}

function loadPublicKey(value: string): KeyObject {
  const pem = value.includes('-----BEGIN') ? value : fs.readFileSync(value, 'utf8');
  return createPublicKey(pem);
}

/**
 * The verifier the configuration asks for: JWKS URL, PEM key, HS256 secret, or (none of
 * them) an HS256 secret generated into the data dir. `exp` is required in every case.
 */
export function createVerifier(config: Config): TokenVerifier {
  const { jwt } = config;
  const claims = {
    requiredClaims: ['exp'],
    issuer: jwt.issuer || undefined,
    audience: jwt.audience || undefined,
  };
  let key: Uint8Array | KeyObject | JWTVerifyGetKey;
  let algorithms: string[];
  let generated = false;
  let secret: Uint8Array<ArrayBuffer> | null = null;
  if (jwt.jwksUrl) {
    key = createRemoteJWKSet(new URL(jwt.jwksUrl));
    algorithms = ['RS256', 'ES256'];
  } else if (jwt.publicKey) {
    key = loadPublicKey(jwt.publicKey);
    algorithms = ['RS256', 'ES256'];
  } else {
    const text = jwt.secret || ensureSecretFile(config.dataDir, 'jwt-secret', randomSecret);
    generated = !jwt.secret;
    secret = new TextEncoder().encode(text);
    key = secret;
    algorithms = ['HS256'];
  }
  // Handed raw bytes, jose imports them as a key on every check, half of what a check costs;
  // so the HS256 secret is imported once, on first use.
  let hmacKey: Promise<CryptoKey> | undefined;
  const hs256 = secret;
  const verified = new VerifiedTokens();
  const verifier: TokenVerifier = {
    generated,
    async verify(token) {
      const known = verified.get(token);
      if (known) return known;
      try {
        const k = hs256 ? await (hmacKey ??= crypto.subtle.importKey('raw', hs256, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify'])) : key;
        const { payload } = await jwtVerify(token, k as Uint8Array, { ...claims, algorithms });
        const principal = principalOf(payload);
        verified.set(token, principal, payload.exp!);
        return principal;
      } catch (err) {
        throw new AuthError(describe(err));
      }
    },
  };
  if (secret) {
    const hs = secret;
    verifier.mint = async ({ tenantId, admin = false, ttlSeconds = 3600, subject = 'kiln-cli', monthlyTrainingHours }) => {
      const claimsOut: JWTPayload = {};
      if (tenantId) claimsOut.tenant_id = tenantId;
      if (admin) claimsOut.scope = ADMIN_SCOPE;
      if (monthlyTrainingHours !== undefined) claimsOut[MONTHLY_HOURS_CLAIM] = monthlyTrainingHours;
      let builder = new SignJWT(claimsOut)
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(subject)
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds);
      if (jwt.issuer) builder = builder.setIssuer(jwt.issuer);
      if (jwt.audience) builder = builder.setAudience(jwt.audience);
      return builder.sign(hs);
    };
  }
  return verifier;
}

/**
 * Tokens that verified, for a while: a client polls with the same token many times a second,
 * and the signature check (HMAC through WebCrypto, or RSA) was a tenth of a list request's CPU.
 * An entry is good until the token expires and for a minute at most, so a key removed from a
 * JWKS stops being trusted within a minute; a token that differs by a byte is another key.
 */
class VerifiedTokens {
  private static readonly MAX_ENTRIES = 10_000;
  private static readonly MAX_AGE_MS = 60_000;
  private readonly entries = new Map<string, { principal: Principal; untilMs: number }>();

  get(token: string): Principal | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    if (Date.now() < entry.untilMs) return entry.principal;
    this.entries.delete(token);
    return undefined;
  }

  set(token: string, principal: Principal, expSeconds: number): void {
    // Oldest first: a full map forgets the token it learned earliest.
    if (this.entries.size >= VerifiedTokens.MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(token, { principal, untilMs: Math.min(expSeconds * 1000, Date.now() + VerifiedTokens.MAX_AGE_MS) });
  }
}

function describe(err: unknown): string {
  const code = (err as { code?: string }).code;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'Token has expired';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'Token signature is invalid';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `Token claim is invalid: ${(err as Error).message}`;
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'Token algorithm is not accepted';
    default:
      return 'Could not validate credentials';
  }
}
