import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { ApiError, KilnClient } from '../../src/cli/client/http.js';
import { freePort } from '../helpers/free-port.js';

/** A server that answers each POST as the test's script says, recording the keys it was sent. */
async function scripted(steps: ((res: http.ServerResponse) => void)[]) {
  const keys: (string | undefined)[] = [];
  const server = http.createServer((req, res) => {
    keys.push(req.headers['idempotency-key'] as string | undefined);
    req.resume();
    req.on('end', () => (steps.shift() ?? ((r) => r.writeHead(500).end()))(res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, keys };
}

const json = (status: number, body: unknown) => (res: http.ServerResponse) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

describe('a create sent from the CLI', () => {
  test('a dropped connection and a 503 are retried with the same Idempotency-Key', async () => {
    const server = await scripted([(res) => res.socket!.destroy(), json(503, { detail: 'Service unavailable' }), json(201, { id: 'task-1' })]);
    const task = await new KilnClient(server.url, 't').createOnce<{ id: string }>('/api/v1/training/', { trigger_word: 'X' }, [5, 5]);
    assert.equal(task.id, 'task-1');
    assert.equal(server.keys.length, 3);
    assert.match(server.keys[0]!, /^[0-9a-f-]{36}$/);
    assert.deepEqual(new Set(server.keys).size, 1, 'every attempt carries the same key');
  });

  test('a refusal is not retried, nor is a refused connection', async () => {
    const server = await scripted([json(422, { detail: [{ loc: ['body', 'steps'], msg: 'too many', type: 'value_error' }] })]);
    await assert.rejects(new KilnClient(server.url, 't').createOnce('/api/v1/training/', {}, [5, 5]), (err: unknown) => err instanceof ApiError && err.status === 422);
    assert.equal(server.keys.length, 1);

    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const started = Date.now();
    await assert.rejects(new KilnClient(nowhere, 't').createOnce('/api/v1/training/', {}, [5_000]), /cannot reach Kiln/);
    assert.ok(Date.now() - started < 4_000, 'no wait before saying so');
  });

  test('attempts stop when the retries are spent', async () => {
    const server = await scripted([json(503, {}), json(503, {}), json(503, {})]);
    await assert.rejects(new KilnClient(server.url, 't').createOnce('/api/v1/training/', {}, [5, 5]), (err: unknown) => err instanceof ApiError && err.status === 503);
    assert.equal(server.keys.length, 3);
  });
});
