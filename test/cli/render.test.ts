import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { KilnClient } from '../../src/cli/client/http.js';
import { formatEta, progressLine, ProgressRenderer } from '../../src/cli/client/progress.js';
import { readSse, watchTask } from '../../src/cli/client/watch.js';

/** A stand-in for stderr that records what was written, TTY or not. */
function capture(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, done) {
      text += String(chunk);
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  stream.isTTY = isTTY;
  return { stream, text: () => text };
}

describe('progress rendering', () => {
  test('ETA is mm:ss, unknown is dashes', () => {
    assert.equal(formatEta(0), '00:00');
    assert.equal(formatEta(125), '02:05');
    assert.equal(formatEta(null), '--:--');
  });

  test('the line holds status, bar, step/total, loss and ETA', () => {
    const line = progressLine({ status: 'TRAINING', step: 5, total: 10, progress: 50, etaSeconds: 61, loss: 0.12345, ahead: null }, true);
    assert.equal(line, `TRAINING      [${'#'.repeat(12)}${'-'.repeat(12)}] 5/10  loss 0.1235  ETA 01:01`);
  });

  test('a waiting task shows how many jobs are ahead of it', () => {
    const line = progressLine({ status: 'QUEUED', step: 0, total: 10, progress: 10, etaSeconds: null, loss: null, ahead: 3 }, false);
    assert.equal(line, 'QUEUED, 3 ahead 0/10  ETA --:--');
  });

  test('a TTY gets one line redrawn in place, ended on finish', () => {
    const out = capture(true);
    const renderer = new ProgressRenderer(out.stream);
    renderer.update({ status: 'TRAINING', total: 10 });
    renderer.update({ step: 1, loss: 1 });
    renderer.finish();
    assert.equal(out.text().split('\r\x1b[K').length, 3);
    assert.ok(out.text().endsWith('\n'));
    assert.equal(out.text().split('\n').length, 2);
  });

  test('a pipe gets a line per change of status or queue place, not per step', () => {
    const out = capture(false);
    const renderer = new ProgressRenderer(out.stream);
    renderer.update({ status: 'QUEUED', total: 10 });
    renderer.update({ ahead: 2 });
    renderer.update({ ahead: 2 });
    renderer.update({ ahead: 0 });
    for (let step = 1; step <= 5; step++) renderer.update({ status: 'TRAINING', step, ahead: null });
    renderer.update({ status: 'COMPLETED', step: 10 });
    assert.deepEqual(
      out
        .text()
        .trim()
        .split('\n')
        .map((l) => l.split(/\s+/)[0]),
      ['QUEUED', 'QUEUED,', 'QUEUED,', 'TRAINING', 'COMPLETED'],
    );
    assert.match(out.text(), /^QUEUED, 2 ahead .*\n^QUEUED, 0 ahead /m);
    assert.ok(!out.text().includes('\r'));
  });
});

describe('following a task', () => {
  test('SSE blocks split across chunks are reassembled', async () => {
    async function* chunks() {
      const enc = new TextEncoder();
      yield enc.encode('event: status\ndata: {"status":"TRA');
      yield enc.encode('INING"}\n\nid: 3\nevent: step\ndata: {"step":3}\n\n: comment\n\nevent: end\ndata: {}\n\n');
    }
    const events = [];
    for await (const e of readSse(chunks())) events.push(e);
    assert.deepEqual(events, [
      { event: 'status', data: { status: 'TRAINING' } },
      { event: 'step', data: { step: 3 } },
      { event: 'end', data: {} },
    ]);
  });

  test('when the stream drops before `end`, polling carries on to the final state', async () => {
    let polls = 0;
    const api = http.createServer((req, res) => {
      if (req.url!.endsWith('/events')) {
        // One status, then the connection dies, as behind a proxy that times out.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: status\ndata: {"status":"TRAINING","current_step":1,"total_steps":4,"progress":25,"eta_seconds":9}\n\n');
        setTimeout(() => res.destroy(), 20);
        return;
      }
      polls++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'x', status: 'COMPLETED', current_step: 4, total_steps: 4, progress: 100, eta_seconds: 0 }));
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    try {
      const client = new KilnClient(`http://127.0.0.1:${(api.address() as AddressInfo).port}`, 't');
      const out = capture(false);
      const final = await watchTask(client, 'x', new ProgressRenderer(out.stream));
      assert.equal(final.status, 'COMPLETED');
      assert.equal(polls, 1);
      assert.match(out.text(), /^TRAINING\s+1\/4/m);
      assert.match(out.text(), /^COMPLETED\s+4\/4/m);
    } finally {
      api.close();
    }
  });

  test('the queue place shows while the task waits and goes when it starts', async () => {
    const api = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': req.url!.endsWith('/events') ? 'text/event-stream' : 'application/json' });
      if (!req.url!.endsWith('/events')) return res.end(JSON.stringify({ id: 'x', status: 'COMPLETED', current_step: 4, total_steps: 4, progress: 100, eta_seconds: 0 }));
      const status = (s: string, step: number) => `event: status\ndata: ${JSON.stringify({ status: s, current_step: step, total_steps: 4, progress: 0, eta_seconds: null })}\n\n`;
      const queue = (position: number | null) => `event: queue\ndata: ${JSON.stringify({ status: 'QUEUED', waiting_for: position === null ? null : 'train', position })}\n\n`;
      res.end(status('QUEUED', 0) + queue(1) + queue(0) + status('TRAINING', 0) + queue(null) + status('COMPLETED', 4) + 'event: end\ndata: {}\n\n');
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    try {
      const client = new KilnClient(`http://127.0.0.1:${(api.address() as AddressInfo).port}`, 't');
      const out = capture(false);
      await watchTask(client, 'x', new ProgressRenderer(out.stream));
      assert.deepEqual(
        out
          .text()
          .trim()
          .split('\n')
          .map((l) => l.split(' 0/4')[0].split(' 4/4')[0].trim()),
        ['QUEUED', 'QUEUED, 1 ahead', 'QUEUED, 0 ahead', 'TRAINING', 'COMPLETED'],
      );
    } finally {
      api.close();
    }
  });
});
