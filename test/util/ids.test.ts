import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { uuidv7 } from '../../src/util/ids.js';

describe('uuidv7', () => {
  test('ids made in the same millisecond sort in the order they were made', () => {
    const now = Date.now() + 10_000;
    const ids = Array.from({ length: 5000 }, () => uuidv7(now));
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, ids.length);
  });

  test('version 7, RFC 4122 variant, millisecond timestamp first', () => {
    const now = Date.UTC(2026, 0, 2, 3, 4, 5, 678) + 1e9;
    const id = uuidv7(now);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(parseInt(id.replace(/-/g, '').slice(0, 12), 16), now);
  });

  test('an explicit time in the past is kept', () => {
    const past = Date.UTC(2020, 5, 1);
    assert.equal(parseInt(uuidv7(past).replace(/-/g, '').slice(0, 12), 16), past);
  });
});
