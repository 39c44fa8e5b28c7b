import type { Logger } from 'pino';
import type { JOB_KINDS } from '../domain/schemas/usage.js';
import type { LeasedRow, LifecycleStore } from '../store/lifecycle-store.js';

/** Where a job runs: one GPU (its index goes to CUDA_VISIBLE_DEVICES), a CPU training slot, or a preprocessing slot. */
export type Slot = { kind: 'gpu'; device: string } | { kind: 'cpu'; index: number } | { kind: 'preprocess'; index: number };

/** The slot pools of a worker: preprocessing is I/O and sharp; the accelerator pool trains and generates. */
export type Pool = 'preprocess' | 'accelerator';

/** Why a running job is asked to stop. */
export type StopReason = 'cancelled' | 'shutdown' | 'lease_lost';

export interface JobContext<Row> {
  row: Row;
  slot: Slot;
  /** Aborted with a StopReason as its reason; jobs stop at their next safe point. */
  signal: AbortSignal;
  /** Writes progress fields while this worker holds the lease: the row as written, or undefined once it does not. */
  update(set: Partial<Row>): Promise<Row | undefined>;
  log: Logger;
}

/** Fields the job hands back, written together with its finishing transition. */
export interface JobResult<Row> {
  set?: Partial<Row>;
}

/** A failure the user should read: its message becomes the row's error_message. */
export class JobFailure extends Error {}

export type JobHandler<Row> = (ctx: JobContext<Row>) => Promise<JobResult<Row>>;

/**
 * One kind of work a worker can run: the rows it takes (a table under its lifecycle), how the
 * claim picks and marks them, what finishing, failing and giving back write, and the handler
 * that does the work. The queue facts are in engine/kinds.ts; handlers are given at wiring time.
 */
export interface JobKind<Row extends LeasedRow = LeasedRow> {
  name: (typeof JOB_KINDS)[number];
  pool: Pool;
  rows: LifecycleStore<Row, string>;
  claim: {
    /** The lifecycle transition the claim makes (one from -> to edge). */
    transition: string;
    /** `priority` orders by priority, then age; `fifo` by age alone. */
    order: 'priority' | 'fifo';
    /** Counted against KILN_MAX_RUNNING_PER_TENANT, by this tenant column. */
    tenantColumn: 'origin_tenant_id' | null;
    /** Set once, by the first claim: when the job first started. */
    startedColumn: string;
    /** Where the run's id `<row>:<kind>:<attempt>` goes, if anywhere. */
    runIdColumn: string | null;
  };
  /** When the row joined the queue, for the queue-wait metric. */
  queuedAt(row: Row): string;
  finish: { transition: string; set(result: Partial<Row>, now: string): Partial<Row> };
  failed(message: string, now: string): Partial<Row>;
  released(now: string): Partial<Row>;
  handler: JobHandler<Row>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a worker runs kinds of different row types side by side
export type AnyJobKind = JobKind<any>;
