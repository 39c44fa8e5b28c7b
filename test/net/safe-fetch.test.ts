import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { mkdtemp, readFile, rm, access } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FetchError, OutboundUrlError, safeRequest } from '../../src/net/index.js';

async function server(handler: http.RequestListener): Promise<{ url: string; port: number; hits: () => number }> {
  let hits = 0;
  const s = http.createServer((req, res) => {
    hits++;
    handler(req, res);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  after(() => {
    s.closeAllConnections();
    return new Promise<void>((r) => s.close(() => r()));
  });
  const { port } = s.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, hits: () => hits };
}

const allow = { allowPrivateNetworks: true };

describe('safeRequest', () => {
  it('POSTs a body and returns status, headers, body and hash', async () => {
    const srv = await server((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => res.writeHead(201, { 'x-echo': req.headers['content-type'] }).end(`got ${body}`));
    });
    const res = await safeRequest(`${srv.url}/hook`, { ...allow, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    assert.equal(res.status, 201);
    assert.equal(res.headers['x-echo'], 'application/json');
    assert.equal(res.body.toString(), 'got {"a":1}');
    assert.equal(res.address, '127.0.0.1');
    assert.equal(res.sha256.length, 64);
  });

  it('connects to the vetted address, not to what DNS says later', async () => {
    const srv = await server((req, res) => res.end(`host=${req.headers.host}`));
    let lookups = 0;
    // The name exists only in this resolver; the socket can only reach it through the pinned lookup.
    const res = await safeRequest(`http://pinned.test:${srv.port}/`, {
      ...allow,
      lookup: async () => {
        lookups++;
        return [{ address: '127.0.0.1', family: 4 }];
      },
    });
    assert.equal(res.body.toString(), `host=pinned.test:${srv.port}`);
    assert.equal(lookups, 1);
  });

  it('returns redirects without following them', async () => {
    const srv = await server((req, res) => (req.url === '/a' ? res.writeHead(302, { location: '/b' }).end() : res.end('b')));
    const res = await safeRequest(`${srv.url}/a`, allow);
    assert.equal(res.status, 302);
    assert.equal(res.headers.location, '/b');
    assert.equal(srv.hits(), 1);
  });

  it('aborts a body over maxBytes without Content-Length, and with a lying one', async () => {
    const srv = await server((req, res) => {
      if (req.url === '/declared') res.writeHead(200, { 'content-length': '5000' });
      res.write(Buffer.alloc(3000));
      res.end(Buffer.alloc(2000));
    });
    await assert.rejects(safeRequest(`${srv.url}/chunked`, { ...allow, maxBytes: 4000 }), (e: unknown) => e instanceof FetchError && e.failure === 'too_large');
    await assert.rejects(safeRequest(`${srv.url}/declared`, { ...allow, maxBytes: 4000 }), /5000 bytes, over the 4000-byte limit/);
  });

  it('times out a server that never answers', async () => {
    const srv = await server(() => {});
    await assert.rejects(safeRequest(srv.url, { ...allow, timeoutMs: 200 }), (e: unknown) => e instanceof FetchError && e.failure === 'timeout');
  });

  it('streams a 2xx body to a file, and writes nothing for other statuses', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-net-'));
    after(() => rm(dir, { recursive: true, force: true }));
    const srv = await server((req, res) => (req.url === '/ok' ? res.end('file body') : res.writeHead(404).end('missing')));
    const ok = await safeRequest(`${srv.url}/ok`, { ...allow, toFile: path.join(dir, 'ok') });
    assert.equal(await readFile(path.join(dir, 'ok'), 'utf8'), 'file body');
    assert.equal(ok.bytes, 9);
    const missing = await safeRequest(`${srv.url}/missing`, { ...allow, toFile: path.join(dir, 'missing') });
    assert.equal(missing.status, 404);
    await assert.rejects(access(path.join(dir, 'missing')));
  });

  it('refuses loopback when private networks are not allowed, before connecting', async () => {
    const srv = await server((_req, res) => res.end('x'));
    await assert.rejects(safeRequest(srv.url, { allowPrivateNetworks: false, label: 'webhook_url' }), (e: unknown) => {
      assert.ok(e instanceof OutboundUrlError);
      assert.match(e.message, /^webhook_url points to 127\.0\.0\.1, a loopback address; set KILN_ALLOW_PRIVATE_NETWORKS=1 to allow$/);
      return true;
    });
    assert.equal(srv.hits(), 0);
  });

  it('stops when the signal aborts', async () => {
    const srv = await server(() => {});
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(safeRequest(srv.url, { ...allow, signal: controller.signal }), (e: unknown) => e instanceof FetchError && e.failure === 'aborted');
  });
});
