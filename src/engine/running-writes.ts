import type { OutageLog } from '../store/outage.js';

/**
 * The progress writes of one running job, coalesced while the database is unavailable: a
 * write that cannot land is kept and merged under the next one, and whatever is still
 * unwritten when the job ends goes out with its final transition. The job keeps running
 * through a short outage and loses no field (step, logs, counts), only intermediate values.
 */
export class RunningWrites<Row> {
  private pending: Partial<Row> = {};

  constructor(
    private readonly write: (set: Partial<Row>) => Promise<Row | undefined>,
    private readonly outage: OutageLog,
  ) {}

  /** The row as written; undefined when the lease is gone or the write is deferred. */
  async update(set: Partial<Row>): Promise<Row | undefined> {
    const batch = { ...this.pending, ...set };
    this.pending = {};
    try {
      const row = await this.write(batch);
      this.outage.ok();
      return row;
    } catch (err) {
      if (!this.outage.failed(err, 'progress write')) throw err;
      // Newer values written meanwhile win over this batch's.
      this.pending = { ...batch, ...this.pending };
      return undefined;
    }
  }

  /** What never reached the database; the caller writes it with the job's outcome. */
  takePending(): Partial<Row> {
    const pending = this.pending;
    this.pending = {};
    return pending;
  }
}
