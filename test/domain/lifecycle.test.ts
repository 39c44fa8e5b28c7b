import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GENERATION_LIFECYCLE, TRAINING_LIFECYCLE, nextStatus } from '../../src/domain/lifecycle.js';
import type { LeasedRow, LifecycleStore } from '../../src/store/lifecycle-store.js';
import { DIALECTS, openHarness, type Harness } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';
import { insertGeneration } from '../helpers/generations.js';

/**
 * The state machines as the product promises them, written out by hand: each transition, the
 * statuses it leaves from, and where it goes. Every pair not listed must be refused.
 */
const TRAINING_EXPECTED: Record<string, Record<string, string>> = {
  claim_preprocessing: { PENDING: 'PREPROCESSING' },
  finish_preprocessing: { PREPROCESSING: 'QUEUED' },
  claim_training: { QUEUED: 'TRAINING' },
  complete: { TRAINING: 'COMPLETED' },
  fail: { PENDING: 'FAILED', PREPROCESSING: 'FAILED', QUEUED: 'FAILED', TRAINING: 'FAILED' },
  cancel: { PENDING: 'CANCELLED', PREPROCESSING: 'CANCELLED', QUEUED: 'CANCELLED', TRAINING: 'CANCELLED' },
  release: { PREPROCESSING: 'PENDING', TRAINING: 'QUEUED' },
  retry: { FAILED: 'PENDING', CANCELLED: 'PENDING' },
};
const GENERATION_EXPECTED: Record<string, Record<string, string>> = {
  claim: { PENDING: 'RUNNING' },
  complete: { RUNNING: 'COMPLETED' },
  fail: { PENDING: 'FAILED', RUNNING: 'FAILED' },
  cancel: { PENDING: 'CANCELLED', RUNNING: 'CANCELLED' },
  release: { RUNNING: 'PENDING' },
  retry: { FAILED: 'PENDING', CANCELLED: 'PENDING' },
};

const machines = [
  { name: 'training', lifecycle: TRAINING_LIFECYCLE, expected: TRAINING_EXPECTED },
  { name: 'generation', lifecycle: GENERATION_LIFECYCLE, expected: GENERATION_EXPECTED },
] as const;

describe('lifecycle tables', () => {
  for (const { name, lifecycle, expected } of machines) {
    test(`${name}: the table is exactly the promised machine`, () => {
      assert.deepEqual(Object.keys(lifecycle.transitions).sort(), Object.keys(expected).sort());
      for (const transition of Object.keys(expected)) {
        for (const from of lifecycle.statuses) {
          assert.equal(nextStatus(lifecycle as never, transition, from), expected[transition][from] ?? null, `${transition} from ${from}`);
        }
      }
    });

    test(`${name}: nothing leaves a terminal status but retry`, () => {
      for (const [transition, edges] of Object.entries(lifecycle.transitions)) {
        for (const from of lifecycle.terminal) if (transition !== 'retry') assert.equal((edges as Record<string, string>)[from], undefined, `${transition} from ${from}`);
      }
    });
  }
});

for (const dialect of DIALECTS) {
  describe(`every transition through the store, allowed and refused (${dialect})`, () => {
    let h: Harness;
    before(async () => {
      h = await openHarness(dialect);
    });
    after(() => h.close());

    const insert = {
      training: async (status: string) => (await insertTask(h.runtime.taskStore, { set: { status } })).id,
      generation: async (status: string) => (await insertGeneration(h.runtime.generationStore, { status })).id,
    };
    const storeOf = (name: 'training' | 'generation') => (name === 'training' ? h.runtime.taskStore : h.runtime.generationStore) as unknown as LifecycleStore<LeasedRow, string>;

    for (const { name, lifecycle, expected } of machines) {
      test(`${name}: each (transition, status) pair moves as the table says or is refused unchanged`, async () => {
        const rows = storeOf(name);
        for (const transition of Object.keys(expected)) {
          for (const from of lifecycle.statuses) {
            const id = await insert[name](from);
            const res = await rows.transition(id, transition);
            const want = expected[transition][from];
            if (want) {
              assert.ok(res.ok, `${transition} from ${from} should be allowed`);
              assert.equal(res.row.status, want);
            } else {
              assert.ok(!res.ok && res.reason === 'forbidden', `${transition} from ${from} should be refused`);
              assert.equal((await rows.get(id))!.status, from, `${transition} from ${from} left the row alone`);
            }
          }
        }
      });
    }

    test('a worker write names its lease: another worker, or an expiry the rescuer did not see, is refused', async () => {
      const rows = storeOf('generation');
      const id = await insert.generation('RUNNING');
      await h.runtime.store.db.updateTable('generations').set({ lease_owner: 'w1', lease_expires_at: '2030-01-01T00:00:00.000Z' }).where('id', '=', id).execute();
      assert.equal((await rows.transition(id, 'complete', { leaseOwner: 'w2' })).ok, false);
      assert.equal((await rows.transition(id, 'release', { leaseOwner: 'w1', leaseExpiresAt: '2029-01-01T00:00:00.000Z' })).ok, false);
      assert.equal((await rows.transition(id, 'complete', { leaseOwner: 'w1' })).ok, true);
    });
  });
}
