import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EtaEstimator, monotonic, preprocessProgress, trainingProgress } from '../../src/training/progress.js';

describe('progress and ETA', () => {
  test('preprocessing fills 0–10 stage by stage, training 10–100', () => {
    assert.equal(preprocessProgress('downloading', 0, 4), 0);
    assert.equal(preprocessProgress('downloading', 4, 4), 4);
    assert.equal(preprocessProgress('validating', 2, 4), 5);
    assert.equal(preprocessProgress('finalizing', 1, 1), 10);
    assert.equal(trainingProgress(0, 100), 10);
    assert.equal(trainingProgress(50, 100), 55);
    assert.equal(trainingProgress(100, 100), 100);
    assert.equal(monotonic(55, 12), 55, 'a restarted run never moves progress back');
  });

  test('the ETA is null until enough steps, then steps left times the recent mean plus samples and saves due', () => {
    const eta = new EtaEstimator({ totalSteps: 100, sampleEvery: 50, saveEvery: 100, samplesPerRound: 1 });
    eta.recordStep(0.5);
    eta.recordStep(0.5);
    assert.equal(eta.estimate(2), null);
    eta.recordStep(0.5);
    // 97 steps x 0.5 s + 2 sample rounds (steps 50, 100) at 2 x 0.5 s + 1 save at 0.5 s
    assert.equal(eta.estimate(3), Math.round(97 * 0.5 + 2 * 1 + 0.5));
    eta.recordSampleRound(10);
    assert.equal(eta.estimate(60), Math.round(40 * 0.5 + 1 * 10 + 0.5), 'a measured sample round replaces the guess');
    assert.equal(eta.estimate(100), 0 + 0);
  });

  test('the mean follows recent steps only', () => {
    const eta = new EtaEstimator({ totalSteps: 1000, sampleEvery: 1000, saveEvery: 1000, samplesPerRound: 0 }, 3, 3);
    for (const s of [10, 10, 10, 1, 1, 1]) eta.recordStep(s);
    assert.equal(eta.estimate(900), 100 + 1);
  });
});
