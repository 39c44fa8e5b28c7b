import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EtaEstimator, GapMeter, monotonic, preprocessProgress, trainingProgress } from '../../src/domain/progress.js';

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
  test('time between steps is split into what the samples took and what the checkpoint took', () => {
    const eta = new EtaEstimator({ totalSteps: 100, sampleEvery: 50, saveEvery: 50, samplesPerRound: 1 });
    const gaps = new GapMeter(eta);
    for (const at of [1000, 2000, 3000]) {
      gaps.step(1, at);
      eta.recordStep(1);
    }
    // After step 3: one preview sample said it took 2 s, then a checkpoint; step 4 lands 8 s after step 3.
    gaps.sample(2);
    gaps.checkpoint();
    gaps.step(1, 11_000);
    eta.recordStep(1);
    // 96 steps at 1 s, two sample rounds at 2 s, two saves at the remaining 5 s of the gap.
    assert.equal(eta.estimate(4), 96 + 2 * 2 + 2 * 5);
  });
});
