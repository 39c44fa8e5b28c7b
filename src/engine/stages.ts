import type { Logger } from 'pino';
import type { TrainingTaskRow } from '../store/db.js';
import type { StageKind } from './claim.js';

/** Where a training stage runs: one GPU (its index goes to CUDA_VISIBLE_DEVICES) or a CPU slot. */
export type Slot = { kind: 'gpu'; device: string } | { kind: 'cpu'; index: number } | { kind: 'preprocess'; index: number };

/** Why a running stage is asked to stop. */
export type StopReason = 'cancelled' | 'shutdown' | 'lease_lost';

export interface StageContext {
  task: TrainingTaskRow;
  slot: Slot;
  /** Aborted with a StopReason as its reason; stages stop at their next safe point. */
  signal: AbortSignal;
  /** Writes progress fields while this worker holds the lease: the row as written, or undefined once it does not. */
  update(set: Partial<TrainingTaskRow>): Promise<TrainingTaskRow | undefined>;
  log: Logger;
}

/** Fields the stage hands back, written together with its finishing transition. */
export interface StageResult {
  set?: Partial<TrainingTaskRow>;
}

/** A failure the user should read: its message becomes the task's error_message. */
export class StageFailure extends Error {}

export type StageHandler = (ctx: StageContext) => Promise<StageResult>;
export type StageHandlers = Record<StageKind, StageHandler>;
