import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openHarness, type Harness } from '../helpers/harness.js';
import { insertGeneration } from '../helpers/generations.js';
import { insertTask } from '../helpers/tasks.js';

describe('GET /metrics', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness('sqlite');
  });
  after(() => h.close());

  test('reports tasks by status and priority, generations by status, the data dir’s free space; open without a token', async () => {
    await insertTask(h.runtime.taskStore, { priority: 1 });
    await insertTask(h.runtime.taskStore, { priority: 1 });
    await insertTask(h.runtime.taskStore, { priority: 3, set: { status: 'FAILED' } });
    await insertGeneration(h.runtime.generationStore);
    await insertGeneration(h.runtime.generationStore, { status: 'COMPLETED' });
    await insertGeneration(h.runtime.generationStore, { status: 'COMPLETED' });
    h.runtime.metrics.leaseLosses.inc({ outcome: 'requeued' });
    h.runtime.metrics.webhookOutcomes.inc({ outcome: 'delivered' });
    h.runtime.metrics.queueWait.observe({ stage: 'train' }, 2);
    h.runtime.metrics.stageDuration.observe({ stage: 'train', outcome: 'completed' }, 30);
    const res = await h.app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] as string, /text\/plain/);
    assert.match(res.body, /kiln_tasks\{status="PENDING",priority="1"\} 2/);
    assert.match(res.body, /kiln_tasks\{status="FAILED",priority="3"\} 1/);
    assert.match(res.body, /kiln_generations\{status="PENDING"\} 1/);
    assert.match(res.body, /kiln_generations\{status="COMPLETED"\} 2/);
    assert.match(res.body, /kiln_lease_losses_total\{outcome="requeued"\} 1/);
    assert.match(res.body, /kiln_webhook_deliveries_total\{outcome="delivered"\} 1/);
    assert.match(res.body, /kiln_queue_wait_seconds_count\{stage="train"\} 1/);
    assert.match(res.body, /kiln_stage_duration_seconds_count\{stage="train",outcome="completed"\} 1/);
    const free = Number(/^kiln_data_dir_free_bytes (\d+)$/m.exec(res.body)?.[1]);
    const disk = fs.statfsSync(h.config.dataDir);
    assert.ok(Math.abs(free - disk.bavail * disk.bsize) < 64 * 2 ** 20, `the data dir's free space, about ${disk.bavail * disk.bsize}: ${free}`);
  });
});
