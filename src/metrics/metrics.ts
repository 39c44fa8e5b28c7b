import fs from 'node:fs';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Store } from '../store/db.js';

/**
 * The process's Prometheus metrics. Task counts are read from the database at scrape time,
 * so every API process reports the same truth; the rest count what this process saw.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly queueWait = new Histogram({
    name: 'kiln_queue_wait_seconds',
    help: 'Time a stage waited between becoming runnable and being claimed',
    labelNames: ['stage'],
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400],
    registers: [this.registry],
  });
  readonly stageDuration = new Histogram({
    name: 'kiln_stage_duration_seconds',
    help: 'Wall time of a stage attempt, by outcome',
    labelNames: ['stage', 'outcome'],
    buckets: [1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400],
    registers: [this.registry],
  });
  readonly leaseLosses = new Counter({
    name: 'kiln_lease_losses_total',
    help: 'Stages whose lease expired and were rescued (requeued or failed)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly webhookOutcomes = new Counter({
    name: 'kiln_webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome',
    labelNames: ['outcome'],
    registers: [this.registry],
  });

  constructor(store: Store, dataDir: string) {
    new Gauge({
      name: 'kiln_generations',
      help: 'Generations by status',
      labelNames: ['status'],
      registers: [this.registry],
      async collect() {
        const rows = await store.db
          .selectFrom('generations')
          .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
          .groupBy('status')
          .execute();
        this.reset();
        for (const r of rows) this.set({ status: r.status }, Number(r.n));
      },
    });
    new Gauge({
      name: 'kiln_data_dir_free_bytes',
      help: "Bytes free on the data dir's disk for this process (KILN_MIN_FREE_DISK_MB keeps a floor under it)",
      registers: [this.registry],
      collect() {
        const stats = fs.statfsSync(dataDir);
        this.set(stats.bavail * stats.bsize);
      },
    });
    new Gauge({
      name: 'kiln_tasks',
      help: 'Training tasks by status and priority',
      labelNames: ['status', 'priority'],
      registers: [this.registry],
      async collect() {
        const rows = await store.db
          .selectFrom('training_tasks')
          .select(['status', 'priority', (eb) => eb.fn.countAll<number>().as('n')])
          .groupBy(['status', 'priority'])
          .execute();
        this.reset();
        for (const r of rows) this.set({ status: r.status, priority: String(r.priority) }, Number(r.n));
      },
    });
  }
}
