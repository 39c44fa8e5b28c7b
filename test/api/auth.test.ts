import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, exportSPKI } from 'jose';
import { buildApp } from '../../src/app.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { DIALECTS, openHarness, tmpDir, type Harness } from '../helpers/harness.js';
import { createVerifier } from '../../src/auth/jwt.js';
import { testConfig } from '../../src/config.js';
import { openRuntime } from '../../src/runtime.js';

const SECRET = new TextEncoder().encode('test-secret-test-secret-test-secret!');

function sign(claims: Record<string, unknown>, opts: { exp?: number | null; secret?: Uint8Array; aud?: string; iss?: string } = {}) {
  let b = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('t').setIssuedAt();
  if (opts.exp !== null) b = b.setExpirationTime(opts.exp ?? Math.floor(Date.now() / 1000) + 600);
  if (opts.aud) b = b.setAudience(opts.aud);
  if (opts.iss) b = b.setIssuer(opts.iss);
  return b.sign(opts.secret ?? SECRET);
}

for (const dialect of DIALECTS) {
  describe(`auth and tenants (${dialect})`, () => {
    let h: Harness;
    before(async () => {
      h = await openHarness(dialect);
    });
    after(() => h.close());

    const get = (url: string, authorization?: string) => h.app.inject({ method: 'GET', url, headers: authorization ? { authorization } : {} });

    const refusals: [string, () => Promise<string | undefined>][] = [
      ['no token', async () => undefined],
      ['a malformed header', async () => 'Token abc'],
      ['a token that is not a JWT', async () => 'Bearer not.a.jwt'],
      ['a bad signature', async () => `Bearer ${await sign({ tenant_id: 'acme' }, { secret: new TextEncoder().encode('another-secret-another-secret-1234') })}`],
      ['an expired token', async () => `Bearer ${await sign({ tenant_id: 'acme' }, { exp: Math.floor(Date.now() / 1000) - 60 })}`],
      ['a token without exp', async () => `Bearer ${await sign({ tenant_id: 'acme' }, { exp: null })}`],
    ];
    for (const [name, header] of refusals) {
      test(`${name} is a 401 with WWW-Authenticate: Bearer`, async () => {
        for (const url of ['/api/v1/training/', '/api/v1/training/0b7f6a3e-51d8-4a7a-9d5e-2a1a9e4cfa11']) {
          const res = await get(url, await header());
          assert.equal(res.statusCode, 401);
          assert.equal(res.headers['www-authenticate'], 'Bearer');
          assert.equal(typeof res.json<{ detail: unknown }>().detail, 'string');
        }
        const post = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: { authorization: (await header()) ?? '' }, payload: { trigger_word: 'x' } });
        assert.equal(post.statusCode, 401);
      });
    }

    test('health, readiness, OpenAPI and docs need no token', async () => {
      assert.equal((await get('/healthz')).statusCode, 200);
      const ready = await get('/readyz');
      assert.equal(ready.statusCode, 200);
      assert.equal(ready.json<{ database: string }>().database, dialect);
      assert.equal((await get('/openapi.json')).statusCode, 200);
      assert.equal((await get('/docs/')).statusCode, 200);
    });

    test("another tenant's task is a 404, and admins see every tenant", async () => {
      const acme = await h.auth('acme');
      const globex = await h.auth('globex');
      const admin = await h.auth('ops', { admin: true });
      const created = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: acme, payload: { trigger_word: 'A', origin_tenant_id: 'spoofed' } });
      const task = created.json<TrainingTask>();
      assert.equal(task.origin_tenant_id, 'acme', 'a non-admin cannot create for another tenant');
      const url = `/api/v1/training/${task.id}`;
      assert.equal((await h.app.inject({ method: 'GET', url, headers: acme })).statusCode, 200);
      const other = await h.app.inject({ method: 'GET', url, headers: globex });
      assert.equal(other.statusCode, 404);
      assert.deepEqual(other.json(), { detail: 'Training task not found' });
      assert.equal((await h.app.inject({ method: 'POST', url: `${url}/cancel`, headers: globex })).statusCode, 404);
      const globexList = await h.app.inject({ method: 'GET', url: '/api/v1/training/?limit=100', headers: globex });
      assert.ok(!globexList.json<TrainingTask[]>().some((t) => t.id === task.id));
      assert.equal((await h.app.inject({ method: 'GET', url, headers: admin })).statusCode, 200);
      const adminList = await h.app.inject({ method: 'GET', url: '/api/v1/training/?limit=100', headers: admin });
      assert.ok(adminList.json<TrainingTask[]>().some((t) => t.id === task.id));
      const onBehalf = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: admin, payload: { trigger_word: 'B', origin_tenant_id: 'globex' } });
      assert.equal(onBehalf.json<TrainingTask>().origin_tenant_id, 'globex');

      // tenant_id narrows an admin's list to one tenant; a tenant asking for another's gets none.
      const tenantsIn = async (query: string, headers: Record<string, string>) => [
        ...new Set((await h.app.inject({ method: 'GET', url: `/api/v1/training/?limit=100&${query}`, headers })).json<TrainingTask[]>().map((t) => t.origin_tenant_id)),
      ];
      assert.deepEqual(await tenantsIn('tenant_id=globex', admin), ['globex']);
      assert.deepEqual(await tenantsIn('tenant_id=globex&fields=id,origin_tenant_id', admin), ['globex'], 'with fields= too');
      assert.deepEqual(await tenantsIn('tenant_id=globex', acme), []);
    });
  });
}

describe('token verification settings', () => {
  test('a required audience and issuer refuse tokens for others', async () => {
    const dataDir = tmpDir();
    const config = testConfig(dataDir, { jwt: { ...testConfig(dataDir).jwt, audience: 'kiln', issuer: 'https://id.example' } });
    const rt = await openRuntime(config);
    const app = await buildApp(rt, { logger: false });
    const call = async (token: string) => (await app.inject({ method: 'GET', url: '/api/v1/training/', headers: { authorization: `Bearer ${token}` } })).statusCode;
    assert.equal(await call(await sign({ tenant_id: 'a' }, { aud: 'kiln', iss: 'https://id.example' })), 200);
    assert.equal(await call(await sign({ tenant_id: 'a' }, { aud: 'someone-else', iss: 'https://id.example' })), 401);
    assert.equal(await call(await sign({ tenant_id: 'a' }, { aud: 'kiln', iss: 'https://evil.example' })), 401);
    assert.equal(await call(await sign({ tenant_id: 'a' }, { iss: 'https://id.example' })), 401);
    assert.equal(await call(await rt.verifier.mint!({ tenantId: 'a' })), 200, 'kiln token mints with the configured aud/iss');
    await app.close();
    await rt.close();
  });

  const keyPair = (alg: 'RS256' | 'ES256') => (alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' }));

  for (const alg of ['RS256', 'ES256'] as const) {
    test(`${alg} tokens verify against a PEM public key; HS256 ones are refused`, async () => {
      const { publicKey, privateKey } = keyPair(alg);
      const dataDir = tmpDir();
      const pem = await exportSPKI(publicKey);
      const config = testConfig(dataDir, { jwt: { secret: '', jwksUrl: '', publicKey: pem, issuer: '', audience: '' } });
      const rt = await openRuntime(config);
      const app = await buildApp(rt, { logger: false });
      const good = await new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg }).setExpirationTime('5m').sign(privateKey);
      const res = await app.inject({ method: 'GET', url: '/api/v1/training/', headers: { authorization: `Bearer ${good}` } });
      assert.equal(res.statusCode, 200);
      const hs = await sign({ tenant_id: 'acme' });
      assert.equal((await app.inject({ method: 'GET', url: '/api/v1/training/', headers: { authorization: `Bearer ${hs}` } })).statusCode, 401);
      assert.equal(rt.verifier.mint, undefined);
      await app.close();
      await rt.close();
    });
  }

  test('RS256 tokens verify against keys fetched from a JWKS URL', async () => {
    const { publicKey, privateKey } = keyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
    const dataDir = tmpDir();
    const rt = await openRuntime(testConfig(dataDir, { jwt: { secret: '', jwksUrl: url, publicKey: '', issuer: '', audience: '' } }));
    const app = await buildApp(rt, { logger: false });
    const call = async (token: string) => (await app.inject({ method: 'GET', url: '/api/v1/training/', headers: { authorization: `Bearer ${token}` } })).statusCode;
    assert.equal(await call(await new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setExpirationTime('5m').sign(privateKey)), 200);
    const other = keyPair('RS256');
    assert.equal(await call(await new SignJWT({ tenant_id: 'acme' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setExpirationTime('5m').sign(other.privateKey)), 401);
    await app.close();
    await rt.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  test('a token that verified once is remembered, but still expires on time and is not stretched to a lookalike', async () => {
    const dataDir = tmpDir();
    const verifier = createVerifier(testConfig(dataDir, { jwt: { ...testConfig(dataDir).jwt, secret: new TextDecoder().decode(SECRET) } }));
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await sign({ tenant_id: 'acme', scope: 'training:admin' }, { exp });
    assert.deepEqual(await verifier.verify(token), { subject: 't', tenantId: 'acme', admin: true });
    assert.deepEqual(await verifier.verify(token), { subject: 't', tenantId: 'acme', admin: true }, 'the remembered answer');
    const [head, body, signature] = token.split('.');
    const flipped = `${signature.slice(0, -2)}${signature.at(-2) === 'A' ? 'B' : 'A'}${signature.at(-1)}`;
    await assert.rejects(verifier.verify(`${head}.${body}.${flipped}`), /signature is invalid/);
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), tenant_id: 'other' })).toString('base64url');
    await assert.rejects(verifier.verify(`${head}.${forged}.${signature}`), /signature is invalid/);
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 50));
    await assert.rejects(verifier.verify(token), /Token has expired/);
  });

  test('with no secret configured one is generated in the data dir and reused', async () => {
    const dataDir = tmpDir();
    const config = testConfig(dataDir, { jwt: { secret: '', jwksUrl: '', publicKey: '', issuer: '', audience: '' } });
    const a = await openRuntime(config);
    const token = await a.verifier.mint!({ tenantId: 'x' });
    assert.equal(a.verifier.generated, true);
    await a.close();
    const b = await openRuntime(config);
    assert.equal((await b.verifier.verify(token)).tenantId, 'x');
    await b.close();
  });
});
