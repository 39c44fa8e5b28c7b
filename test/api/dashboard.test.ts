import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Fastify from 'fastify';
import { dashboardRoutes } from '../../src/api/routes/dashboard.js';
import { openHarness, tmpDir, type Harness } from '../helpers/harness.js';

/** A build as Vite lays it out: the shell and a content-hashed asset. */
function fakeBuild(): string {
  const dir = tmpDir('kiln-web-');
  fs.mkdirSync(path.join(dir, 'assets'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><script type="module" src="/assets/index-abc123.js"></script>');
  fs.writeFileSync(path.join(dir, 'assets', 'index-abc123.js'), 'console.log("kiln")');
  return dir;
}

describe('the dashboard routes', () => {
  const dir = fakeBuild();
  const app = Fastify();
  before(async () => {
    await app.register(dashboardRoutes, { dir });
    await app.ready();
  });
  after(() => app.close());

  test('every page is the same shell, with no data, no caching and a strict content policy', async () => {
    for (const url of ['/', '/tasks/0b7f6a3e-51d8-4a7a-9d5e-2a1a9e4cfa11', '/new', '/generate', '/usage']) {
      const res = await app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 200, url);
      assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
      assert.equal(res.headers['cache-control'], 'no-cache');
      const csp = String(res.headers['content-security-policy']);
      for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"])
        assert.ok(csp.includes(directive), `${url}: ${directive}`);
      assert.equal(res.body, fs.readFileSync(path.join(dir, 'index.html'), 'utf8'));
    }
  });

  test('hashed assets are cached for a year; a missing or escaping one is a 404', async () => {
    const js = await app.inject({ method: 'GET', url: '/assets/index-abc123.js' });
    assert.equal(js.statusCode, 200);
    assert.match(String(js.headers['content-type']), /javascript/);
    assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal((await app.inject({ method: 'GET', url: '/assets/index-nope.js' })).statusCode, 404);
    assert.equal((await app.inject({ method: 'GET', url: '/assets/../index.html' })).statusCode, 404);
    assert.equal((await app.inject({ method: 'GET', url: '/assets/%2e%2e/index.html' })).statusCode, 404);
  });

  test('not built: the pages say how to build it', async () => {
    const bare = Fastify();
    await bare.register(dashboardRoutes, { dir: tmpDir('kiln-web-none-') });
    const res = await bare.inject({ method: 'GET', url: '/' });
    assert.equal(res.statusCode, 503);
    assert.match(res.body, /make build/);
    await bare.close();
  });
});

describe('the dashboard in the real app', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness('sqlite');
  });
  after(() => h.close());

  test('needs no token for the shell, while every API route still does', async () => {
    const shell = await h.app.inject({ method: 'GET', url: '/new' });
    // Built or not (make build), the shell is never a 401.
    assert.ok([200, 503].includes(shell.statusCode), String(shell.statusCode));
    assert.equal((await h.app.inject({ method: 'GET', url: '/api/v1/training/' })).statusCode, 401);
    assert.equal((await h.app.inject({ method: 'POST', url: '/new' })).statusCode, 405);
  });
});
