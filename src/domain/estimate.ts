/** One finished training run: how many steps it trained and how long it held its slot. */
export interface RunSample {
  steps: number;
  seconds: number;
}

/**
 * Seconds a training of `steps` steps will take, from earlier runs: a fixed cost (loading the
 * model, caching the dataset, the last samples and the export) plus a cost per step, fitted by
 * least squares over the runs. With runs of one length only, the time per step alone. Null
 * without runs. Rough by nature: resolution, batch size, rank and the slot all move it.
 */
export function estimateTrainingSeconds(runs: readonly RunSample[], steps: number): number | null {
  const usable = runs.filter((r) => r.steps > 0 && r.seconds > 0);
  if (usable.length === 0) return null;
  const n = usable.length;
  const meanSteps = usable.reduce((a, r) => a + r.steps, 0) / n;
  const meanSeconds = usable.reduce((a, r) => a + r.seconds, 0) / n;
  const spread = usable.reduce((a, r) => a + (r.steps - meanSteps) ** 2, 0);
  let perStep = meanSeconds / meanSteps;
  let fixed = 0;
  if (spread > 0) {
    const slope = usable.reduce((a, r) => a + (r.steps - meanSteps) * (r.seconds - meanSeconds), 0) / spread;
    // A fit that says a step costs nothing, or that loading saves time, is noise: keep the plain rate.
    if (slope > 0 && meanSeconds - slope * meanSteps >= 0) {
      perStep = slope;
      fixed = meanSeconds - slope * meanSteps;
    }
  }
  return Math.round(fixed + perStep * steps);
}
