import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PreprocessError } from '../../src/preprocess/index.js';
import type { Manifest } from '../../src/preprocess/manifest.js';
import { jpeg, runJob, startServer, tempDir } from './helpers.js';

async function manifestOf(taskDir: string): Promise<Manifest> {
  return JSON.parse(await readFile(path.join(taskDir, 'dataset', 'manifest.json'), 'utf8')) as Manifest;
}

/** The source must be rejected: the task fails and both the message and the manifest say why. */
async function assertRejected(out: Awaited<ReturnType<typeof runJob>>, reason: RegExp): Promise<void> {
  assert.ok(out.error instanceof PreprocessError, `expected PreprocessError, got ${out.error?.stack}`);
  assert.match(out.error.message, reason);
  const manifest = await manifestOf(out.taskDir);
  assert.equal(manifest.entries[0].status, 'rejected');
  assert.match(manifest.entries[0].reason!, reason);
}

describe('downloading', () => {
  it('a 404 is rejected with its status', async () => {
    const server = await startServer((_req, res) => res.writeHead(404).end('nope'));
    const out = await runJob([`${server.url}/missing.jpg`]);
    await assertRejected(out, /download failed: HTTP 404 from http:\/\/127\.0\.0\.1:\d+\/missing\.jpg/);
    assert.equal(server.hits.get('/missing.jpg'), 1, '4xx is not retried');
  });

  it('a server that never answers times out', async () => {
    const server = await startServer(() => {
      // accept the request and say nothing
    });
    const started = Date.now();
    const out = await runJob([`${server.url}/slow.jpg`], { options: { timeoutMs: 300 } });
    await assertRejected(out, /download failed: timed out after 0\.3 s/);
    assert.ok(Date.now() - started < 3000);
  });

  it('a redirect loop stops after 3 redirects', async () => {
    const server = await startServer((req, res) => res.writeHead(302, { location: req.url === '/a' ? '/b' : '/a' }).end());
    const out = await runJob([`${server.url}/a`]);
    await assertRejected(out, /too many redirects \(more than 3\)/);
    assert.equal((server.hits.get('/a') ?? 0) + (server.hits.get('/b') ?? 0), 4);
  });

  it('a redirect to 127.0.0.1 is refused by the guard on that hop', async () => {
    // Private networks stay forbidden; only this server's own origin is exempted (as an operator
    // allowlist would), so the first hop can be served from loopback while the redirect target,
    // another loopback origin, must pass the guard on its own and does not.
    const target = await startServer((_req, res) => res.writeHead(200).end('secret'));
    const server = await startServer((_req, res) => res.writeHead(302, { location: `${target.url}/internal` }).end());
    const out = await runJob([`${server.url}/start.jpg`], {
      config: { allowPrivateNetworks: false },
      options: { allowedOrigins: [server.url] },
    });
    await assertRejected(out, /refused: redirect to http:\/\/127\.0\.0\.1:\d+\/internal points to 127\.0\.0\.1, a loopback address; set KILN_ALLOW_PRIVATE_NETWORKS=1 to allow/);
    assert.equal(server.hits.get('/start.jpg'), 1);
    assert.equal(target.hits.size, 0, 'the redirect target was never contacted');
  });

  it('a redirect to the cloud metadata address is refused even with private networks allowed', async () => {
    const server = await startServer((_req, res) => res.writeHead(301, { location: 'http://169.254.169.254/latest/meta-data/' }).end());
    const out = await runJob([`${server.url}/x.jpg`]);
    await assertRejected(out, /points to 169\.254\.169\.254, the cloud metadata address/);
  });

  it('a private-address URL is refused without connecting', async () => {
    const out = await runJob(['http://10.0.0.1/photo.jpg'], { config: { allowPrivateNetworks: false }, options: { connectTimeoutMs: 1 } });
    await assertRejected(out, /refused: URL points to 10\.0\.0\.1, a private address; set KILN_ALLOW_PRIVATE_NETWORKS=1 to allow/);
  });

  it('a hostname resolving to a private address is refused (resolver stubbed, nothing connected)', async () => {
    const out = await runJob(['http://photos.example/cat.jpg'], {
      config: { allowPrivateNetworks: false },
      options: {
        lookup: async () => [
          { address: '93.184.216.34', family: 4 },
          { address: '10.0.0.5', family: 4 },
        ],
      },
    });
    await assertRejected(out, /URL resolves to 10\.0\.0\.5, a private address/);
  });

  it('5xx answers are retried, then succeed', async () => {
    const image = await jpeg(320, 240, 7);
    let calls = 0;
    const server = await startServer((_req, res) => (++calls < 3 ? res.writeHead(503).end() : res.writeHead(200).end(image)));
    const out = await runJob([`${server.url}/flaky.jpg`]);
    assert.ifError(out.error);
    assert.equal(out.result!.accepted, 1);
    assert.equal(server.hits.get('/flaky.jpg'), 3);
  });

  it('a dropped connection is retried', async () => {
    const image = await jpeg(320, 240, 8);
    let calls = 0;
    const server = await startServer((req, res) => (++calls === 1 ? req.socket.destroy() : res.writeHead(200).end(image)));
    const out = await runJob([`${server.url}/reset.jpg`]);
    assert.ifError(out.error);
    assert.equal(server.hits.get('/reset.jpg'), 2);
  });

  it('a body over the size cap is refused even without Content-Length', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200); // chunked, no length announced
      res.write(Buffer.alloc(60_000));
      res.end(Buffer.alloc(60_000));
    });
    const out = await runJob([`${server.url}/huge.jpg`], { config: { maxDownloadBytes: 100_000 } });
    await assertRejected(out, /download failed: response exceeds the 100000-byte limit/);
  });

  it('resuming does not download again what sources/ already holds', async () => {
    const images = await Promise.all([1, 2].map((seed) => jpeg(320, 240, seed)));
    const server = await startServer((req, res) => res.writeHead(200).end(images[req.url === '/1.jpg' ? 0 : 1]));
    const dataDir = await tempDir();
    const sources = [`${server.url}/1.jpg`, `${server.url}/2.jpg`];
    const first = await runJob(sources, { dataDir });
    assert.ifError(first.error);
    const index = JSON.parse(await readFile(path.join(first.taskDir, 'sources', 'index.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(index).sort(), sources.sort());

    const second = await runJob(sources, { dataDir });
    assert.ifError(second.error);
    assert.equal(second.result!.accepted, 2);
    assert.equal(server.hits.get('/1.jpg'), 1);
    assert.equal(server.hits.get('/2.jpg'), 1);
  });
});
