import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { Webhook } from 'standardwebhooks';
import type { HTTPValidationError } from '../../src/domain/schemas/errors.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { WebhookDeliverer } from '../../src/webhooks/deliverer.js';
import { webhookSecret } from '../../src/webhooks/signing.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';

/** A real receiver on loopback that checks every signature with the standardwebhooks library. */
async function receiver(secret: string) {
  const verifier = new Webhook(secret);
  const received: { type: string; id: string; data: { id: string; status: string } }[] = [];
  let up = true;
  let failures = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (!up) {
        failures++;
        res.writeHead(503).end('down');
        return;
      }
      try {
        const payload = verifier.verify(body, req.headers as Record<string, string>) as { type: string; data: { id: string; status: string } };
        received.push({ ...payload, id: String(req.headers['webhook-id']) });
        res.writeHead(204).end();
      } catch {
        res.writeHead(400).end('bad signature');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    get failures() {
      return failures;
    },
    setUp(value: boolean) {
      up = value;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

for (const dialect of DIALECTS) {
  describe(`webhooks (${dialect})`, () => {
    let h: Harness;
    let rx: Awaited<ReturnType<typeof receiver>>;
    let deliverer: WebhookDeliverer;
    before(async () => {
      h = await openHarness(dialect, { allowPrivateNetworks: true });
      rx = await receiver(webhookSecret(h.config));
      deliverer = new WebhookDeliverer({ store: h.runtime.store, config: h.config, log: pino({ level: 'silent' }), retryDelaysMs: [400, 400, 400], inFlightMs: 5000 });
    });
    after(async () => {
      await rx.close();
      await h.close();
    });

    test('status changes become signed deliveries the receiver verifies', async () => {
      const headers = await h.auth('acme');
      const created = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: { trigger_word: 'W', webhook_url: rx.url } });
      assert.equal(created.statusCode, 201, created.body);
      const id = created.json<TrainingTask>().id;
      await h.app.inject({ method: 'POST', url: `/api/v1/training/${id}/cancel`, headers });
      assert.equal(await deliverer.runOnce(), 1);
      assert.equal(rx.received.length, 1);
      assert.equal(rx.received[0].type, 'training.cancelled');
      assert.equal(rx.received[0].data.id, id);
      assert.equal(rx.received[0].data.status, 'CANCELLED');
      const list = await h.app.inject({ method: 'GET', url: `/api/v1/training/${id}/webhooks`, headers });
      assert.equal(list.statusCode, 200);
      const deliveries = list.json<{ id: string; status: string; last_status_code: number | null }[]>();
      assert.equal(deliveries[0].status, 'delivered');
      assert.equal(deliveries[0].last_status_code, 204);
      assert.equal(deliveries[0].id, rx.received[0].id);
      const other = await h.app.inject({ method: 'GET', url: `/api/v1/training/${id}/webhooks`, headers: await h.auth('globex') });
      assert.equal(other.statusCode, 404);
    });

    test('a receiver that is down is retried with backoff until it answers', async () => {
      rx.setUp(false);
      const headers = await h.auth('acme');
      const id = (await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: { trigger_word: 'W', webhook_url: rx.url } })).json<TrainingTask>().id;
      await h.app.inject({ method: 'POST', url: `/api/v1/training/${id}/cancel`, headers });
      const before = rx.received.length;
      assert.equal(await deliverer.runOnce(), 1);
      assert.equal(await deliverer.runOnce(), 0, 'not due again before its backoff');
      const row = await h.runtime.store.db.selectFrom('webhook_deliveries').selectAll().where('task_id', '=', id).executeTakeFirstOrThrow();
      assert.equal(row.status, 'pending');
      assert.equal(row.attempts, 1);
      assert.equal(row.last_status_code, 503);
      assert.ok(Date.parse(row.next_attempt_at) > Date.now());
      await new Promise((r) => setTimeout(r, 500));
      await deliverer.runOnce();
      assert.equal(rx.failures, 2);
      rx.setUp(true);
      await new Promise((r) => setTimeout(r, 500));
      await deliverer.runOnce();
      assert.equal(rx.received.length, before + 1);
      const done = await h.runtime.store.db.selectFrom('webhook_deliveries').selectAll().where('task_id', '=', id).executeTakeFirstOrThrow();
      assert.equal(done.status, 'delivered');
      assert.equal(done.attempts, 3);
    });

    test('a delivery is given up after the last retry', async () => {
      rx.setUp(false);
      const headers = await h.auth('acme');
      const id = (await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: { trigger_word: 'W', webhook_url: rx.url } })).json<TrainingTask>().id;
      await h.app.inject({ method: 'POST', url: `/api/v1/training/${id}/cancel`, headers });
      for (let i = 0; i < 4; i++) {
        await deliverer.runOnce();
        await new Promise((r) => setTimeout(r, 500));
      }
      const row = await h.runtime.store.db.selectFrom('webhook_deliveries').selectAll().where('task_id', '=', id).executeTakeFirstOrThrow();
      assert.equal(row.status, 'failed');
      assert.equal(row.attempts, 4);
      rx.setUp(true);
    });
  });
}

describe('webhook_url SSRF rule at creation', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness('sqlite');
  });
  after(() => h.close());

  for (const url of [
    'http://127.0.0.1/hook',
    'http://10.0.0.5/hook',
    'http://169.254.169.254/latest/meta-data',
    'http://[::1]/x',
    'http://192.168.1.1/',
    'http://metadata.google.internal/',
  ]) {
    test(`${url} is refused with a 422 naming webhook_url`, async () => {
      const res = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers: await h.auth('acme'), payload: { trigger_word: 'W', webhook_url: url } });
      assert.equal(res.statusCode, 422, res.body);
      assert.deepEqual(res.json<HTTPValidationError>().detail[0].loc, ['body', 'webhook_url']);
      assert.match(res.json<HTTPValidationError>().detail[0].msg, /KILN_ALLOW_PRIVATE_NETWORKS|metadata/);
    });
  }

  test('a public address literal is accepted (decided without connecting)', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/training/',
      headers: await h.auth('acme'),
      payload: { trigger_word: 'W', webhook_url: 'https://93.184.215.14/hook' },
    });
    assert.equal(res.statusCode, 201, res.body);
  });

  test('a redirecting receiver is not followed: the delivery fails with the reason', async () => {
    const server = http.createServer((_req, res) => res.writeHead(302, { location: 'http://169.254.169.254/' }).end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const cfg = { ...h.config, allowPrivateNetworks: true };
    const { enqueueWebhook } = await import('../../src/webhooks/outbox.js');
    const { insertTask } = await import('../helpers/tasks.js');
    const t = await insertTask(h.runtime.taskStore, { set: { webhook_url: url } });
    await enqueueWebhook(h.runtime.store.db, t, 'training.progress');
    const d = new WebhookDeliverer({ store: h.runtime.store, config: cfg, log: pino({ level: 'silent' }), retryDelaysMs: [60_000] });
    await d.runOnce();
    const row = await h.runtime.store.db.selectFrom('webhook_deliveries').selectAll().where('task_id', '=', t.id).executeTakeFirstOrThrow();
    assert.equal(row.status, 'pending');
    assert.equal(row.last_status_code, 302);
    assert.match(row.last_error!, /redirect .* not followed/);
    await new Promise<void>((r) => server.close(() => r()));
  });
});
