import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { monthStart, usageOf, type RunSpan } from '../../src/domain/usage.js';

const T = (hhmm: string) => Date.parse(`2026-12-01T${hhmm}:00.000Z`);
const run = (tenant: string | null, stage: string, slot: string | null, from: string, to: string | null): RunSpan => ({
  tenant_id: tenant,
  stage,
  slot,
  started_at: new Date(T(from)).toISOString(),
  ended_at: to === null ? null : new Date(T(to)).toISOString(),
});

describe('usage', () => {
  test('sums seconds and runs per tenant, job kind and slot kind, in a stable order', () => {
    const lines = usageOf(
      [
        run('globex', 'train', 'gpu', '10:00', '10:30'),
        run('acme', 'train', 'gpu', '10:00', '10:10'),
        run('acme', 'train', 'gpu', '11:00', '11:05'),
        run('acme', 'preprocess', 'preprocess', '09:59', '10:00'),
        run('acme', 'generate', 'gpu', '12:00', '12:01'),
        run(null, 'train', null, '10:00', '10:01'),
      ],
      T('00:00'),
      T('23:59'),
      T('23:59'),
    );
    assert.deepEqual(lines, [
      { tenant_id: null, job: 'train', slot: 'unknown', runs: 1, seconds: 60 },
      { tenant_id: 'acme', job: 'generate', slot: 'gpu', runs: 1, seconds: 60 },
      { tenant_id: 'acme', job: 'preprocess', slot: 'preprocess', runs: 1, seconds: 60 },
      { tenant_id: 'acme', job: 'train', slot: 'gpu', runs: 2, seconds: 900 },
      { tenant_id: 'globex', job: 'train', slot: 'gpu', runs: 1, seconds: 1800 },
    ]);
  });

  test('a run crossing an edge counts its part inside, so adjacent periods add up to the whole', () => {
    const runs = [run('acme', 'train', 'gpu', '10:50', '11:20')];
    const before = usageOf(runs, T('10:00'), T('11:00'), T('23:00'));
    const after = usageOf(runs, T('11:00'), T('12:00'), T('23:00'));
    assert.deepEqual([before[0].seconds, after[0].seconds], [600, 1200]);
    assert.equal(before[0].runs + after[0].runs, 2, 'the run is counted in each period it touched');
    assert.deepEqual(usageOf(runs, T('11:20'), T('12:00'), T('23:00')), [], 'a run that ended as the period began is not in it');
    assert.deepEqual(usageOf(runs, T('09:00'), T('10:50'), T('23:00')), [], 'nor one that began as it ended');
  });

  test('a run still going counts up to now, and no further than the period', () => {
    const runs = [run('acme', 'train', 'gpu', '10:00', null)];
    assert.equal(usageOf(runs, T('00:00'), T('23:00'), T('10:15'))[0].seconds, 900);
    assert.equal(usageOf(runs, T('00:00'), T('10:05'), T('10:15'))[0].seconds, 300);
  });

  test('the default period starts on the first of the month, UTC', () => {
    assert.equal(new Date(monthStart(Date.parse('2026-12-04T22:07:00+05:00'))).toISOString(), '2026-12-01T00:00:00.000Z');
    assert.equal(new Date(monthStart(Date.parse('2027-01-01T00:00:00.000Z'))).toISOString(), '2027-01-01T00:00:00.000Z');
  });
});
