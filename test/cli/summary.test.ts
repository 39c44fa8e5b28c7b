import assert from 'node:assert/strict';
import { test } from 'node:test';
import { summarize } from '../../src/cli/client/status.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';

const task = {
  id: 't1',
  status: 'QUEUED',
  trigger_word: 'TOK',
  training_type: 'LORA',
  rank: 16,
  current_step: 0,
  total_steps: 100,
  progress: 10,
  eta_seconds: null,
  preprocessing_stage: null,
  error_message: null,
  local_model_path: null,
  photos_deleted_at: null,
  created_at: '2026-12-05T00:00:00Z',
  completed_at: null,
} as unknown as TrainingTask;

test('kiln status says how far back in the queue a task is, and when the tenant cap holds it', () => {
  const place = { status: 'QUEUED', waiting_for: 'train', position: 1, tenant_running: 1, tenant_cap: 4, estimated_training_seconds: null, held_by_tenant_cap: false } as const;
  assert.match(summarize(task, place), /^queue {9}1 job ahead for train$/m);
  assert.match(
    summarize(task, { ...place, position: 0, tenant_running: 4, held_by_tenant_cap: true }),
    /^queue {9}0 jobs ahead for train; your 4 running stages are at the cap, so it starts when one ends$/m,
  );
  assert.doesNotMatch(summarize({ ...task, status: 'TRAINING' }), /queue/, 'no place, no line');
  assert.match(summarize(task, { ...place, estimated_training_seconds: 365 }), /^queue {9}1 job ahead for train; training takes about 6 min 5 s$/m);
});

test('kiln status says when a task’s photos were deleted', () => {
  assert.match(summarize({ ...task, status: 'COMPLETED', photos_deleted_at: '2026-12-05T01:00:00Z' }), /^photos {8}deleted 2026-12-05T01:00:00Z$/m);
  assert.doesNotMatch(summarize({ ...task, photos_deleted_at: null }), /^photos/m);
});
