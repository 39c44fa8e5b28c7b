import assert from 'node:assert/strict';
import { test } from 'node:test';
import { estimateTrainingSeconds } from '../../src/domain/estimate.js';

test('no runs, no estimate; runs of one length give their time per step', () => {
  assert.equal(estimateTrainingSeconds([], 1000), null);
  assert.equal(estimateTrainingSeconds([{ steps: 0, seconds: 10 }], 1000), null, 'a run of no steps says nothing');
  assert.equal(
    estimateTrainingSeconds(
      [
        { steps: 500, seconds: 250 },
        { steps: 500, seconds: 350 },
      ],
      1000,
    ),
    600,
  );
});

test('runs of several lengths separate the fixed cost from the cost per step', () => {
  const runs = [
    { steps: 100, seconds: 90 },
    { steps: 500, seconds: 250 },
    { steps: 1000, seconds: 450 },
  ];
  // Exactly 50 s + 0.4 s a step.
  assert.equal(estimateTrainingSeconds(runs, 2000), 850);
  assert.equal(estimateTrainingSeconds(runs, 0), 50);
});

test('a fit that makes loading save time falls back to the plain rate', () => {
  const runs = [
    { steps: 100, seconds: 10 },
    { steps: 1000, seconds: 900 },
  ];
  // The line through them crosses zero seconds at about 90 steps: a negative fixed cost.
  assert.equal(estimateTrainingSeconds(runs, 1000), Math.round((910 / 1100) * 1000));
});
