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
    const line = progressLine({ status: 'TRAINING', step: 5, total: 10, progress: 50, etaSeconds: 61, loss: 0.12345 }, true);
    assert.equal(line, `TRAINING      [${'#'.repeat(12)}${'-'.repeat(12)}] 5/10  loss 0.1235  ETA 01:01`);
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

  test('a pipe gets a line per status change, not per step', () => {
    const out = capture(false);
    const renderer = new ProgressRenderer(out.stream);
    renderer.update({ status: 'QUEUED', total: 10 });
    for (let step = 1; step <= 5; step++) renderer.update({ status: 'TRAINING', step });
    renderer.update({ status: 'COMPLETED', step: 10 });
    assert.deepEqual(
      out
        .text()
        .trim()
        .split('\n')
        .map((l) => l.split(/\s+/)[0]),
      ['QUEUED', 'TRAINING', 'COMPLETED'],
    );
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
});
