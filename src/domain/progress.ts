/**
 * One 0–100 number for the whole task: preprocessing fills the first PREPROCESS_SHARE
 * percent, training the rest. It never goes backwards, even when a rescued run restarts.
 */
export const PREPROCESS_SHARE = 10;

/** Where each preprocessing stage starts and ends within the preprocessing share, in order. */
const PREPROCESS_STAGES: Record<string, [number, number]> = {
  downloading: [0, 0.4],
  validating: [0.4, 0.6],
  transforming: [0.6, 0.85],
  captioning: [0.85, 0.95],
  finalizing: [0.95, 1],
};

/** The task's progress while a preprocessing stage has done `processed` of its `total` files. */
export function preprocessProgress(stage: string, processed: number, total: number): number {
  const [from, to] = PREPROCESS_STAGES[stage] ?? [0, 1];
  const within = total > 0 ? Math.min(processed, total) / total : 1;
  return PREPROCESS_SHARE * (from + (to - from) * within);
}

export function trainingProgress(step: number, total: number): number {
  return total > 0 ? PREPROCESS_SHARE + ((100 - PREPROCESS_SHARE) * Math.min(step, total)) / total : PREPROCESS_SHARE;
}

export function monotonic(previous: number, next: number): number {
  return Math.round(Math.max(previous, next) * 100) / 100;
}

export interface EtaPlan {
  totalSteps: number;
  sampleEvery: number;
  saveEvery: number;
  samplesPerRound: number;
}

/**
 * Estimates the seconds left: a moving average of recent step times over the steps to go,
 * plus the measured cost of each sample round and checkpoint still due. Null until it has
 * seen enough steps to mean something.
 */
export class EtaEstimator {
  private stepTimes: number[] = [];
  private sampleCost: number | null = null;
  private saveCost: number | null = null;

  constructor(
    private readonly plan: EtaPlan,
    private readonly window = 20,
    private readonly minSteps = 3,
  ) {}

  recordStep(secondsPerStep: number): void {
    if (!Number.isFinite(secondsPerStep) || secondsPerStep <= 0) return;
    this.stepTimes.push(secondsPerStep);
    if (this.stepTimes.length > this.window) this.stepTimes.shift();
  }

  /** Seconds a sample round took (the gap the trainer spent outside steps). */
  recordSampleRound(seconds: number): void {
    this.sampleCost = this.sampleCost === null ? seconds : (this.sampleCost + seconds) / 2;
  }

  recordSave(seconds: number): void {
    this.saveCost = this.saveCost === null ? seconds : (this.saveCost + seconds) / 2;
  }

  estimate(currentStep: number): number | null {
    if (this.stepTimes.length < this.minSteps) return null;
    const { totalSteps, sampleEvery, saveEvery, samplesPerRound } = this.plan;
    const mean = this.stepTimes.reduce((a, b) => a + b, 0) / this.stepTimes.length;
    const remaining = Math.max(0, totalSteps - currentStep);
    const dueAfter = (every: number) => (every > 0 ? Math.floor(totalSteps / every) - Math.floor(currentStep / every) : 0);
    // The final sample round and save happen at the end whatever the interval says.
    const sampleRounds = samplesPerRound > 0 ? dueAfter(sampleEvery) + (totalSteps % sampleEvery === 0 ? 0 : 1) : 0;
    const saves = dueAfter(saveEvery) + (totalSteps % saveEvery === 0 ? 0 : 1);
    const seconds = remaining * mean + sampleRounds * (this.sampleCost ?? mean * 2 * samplesPerRound) + saves * (this.saveCost ?? mean);
    return Math.max(0, Math.round(seconds));
  }
}

/**
 * Learns what the trainer spends between two steps. A gap well beyond a step's time went to
 * preview samples (their events say how long each took) and to a checkpoint (the rest).
 */
export class GapMeter {
  private lastStepAt = 0;
  private sampleSeconds = 0;
  private saved = false;

  constructor(private readonly eta: EtaEstimator) {}

  sample(seconds: number | undefined): void {
    this.sampleSeconds += seconds ?? 0;
  }

  checkpoint(): void {
    this.saved = true;
  }

  step(secondsPerStep: number, now = Date.now()): void {
    if (this.lastStepAt && secondsPerStep > 0) {
      const gap = (now - this.lastStepAt) / 1000 - secondsPerStep;
      if (this.sampleSeconds > 0) this.eta.recordSampleRound(this.sampleSeconds);
      if (this.saved && gap - this.sampleSeconds > 0) this.eta.recordSave(gap - this.sampleSeconds);
    }
    this.lastStepAt = now;
    this.sampleSeconds = 0;
    this.saved = false;
  }
}
