import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { ProgressAnnouncer, PROGRESS_INTERVAL_MS } from '../../src/webhooks/outbox.js';
import { openHarness, type Harness } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';

describe('progress webhooks', () => {
  let h: Harness;
  before(async () => {
    h = await openHarness('sqlite');
  });
  after(() => h.close());

  test('go out at most once per 10 s per task, and only to tasks with a webhook_url', async () => {
    const task = await insertTask(h.runtime.taskStore, { set: { webhook_url: 'https://93.184.215.14/hook', status: 'TRAINING' } });
    const quiet = await insertTask(h.runtime.taskStore, { set: { status: 'TRAINING' } });
    const announcer = new ProgressAnnouncer();
    const t0 = 1_000_000;
    assert.equal(await announcer.maybeAnnounce(h.runtime.store.db, task, t0), true);
    assert.equal(await announcer.maybeAnnounce(h.runtime.store.db, task, t0 + PROGRESS_INTERVAL_MS - 1), false);
    assert.equal(await announcer.maybeAnnounce(h.runtime.store.db, task, t0 + PROGRESS_INTERVAL_MS), true);
    await announcer.maybeAnnounce(h.runtime.store.db, quiet, t0);
    const rows = await h.runtime.store.db.selectFrom('webhook_deliveries').selectAll().where('event_type', '=', 'training.progress').execute();
    assert.deepEqual(
      rows.map((r) => r.task_id),
      [task.id, task.id],
    );
    const body = JSON.parse(rows[0].payload) as { type: string; data: TrainingTask };
    assert.equal(body.type, 'training.progress');
    assert.equal(body.data.id, task.id);
    assert.equal(body.data.status, 'TRAINING');
  });
});
