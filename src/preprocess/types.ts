import type { Resolver } from '../net/index.js';

export type TransformSpec = Record<string, unknown>;

export type { CaptionStrategy, EntityType } from '../domain/schemas/training.js';
import type { CaptionStrategy, EntityType } from '../domain/schemas/training.js';

export interface PreprocessJob {
  taskId: string;
  tenantId: string | null;
  /** KILN_DATA_DIR/tasks/<id>; sources/ and dataset/ are written under it. */
  taskDir: string;
  sources: string[];
  triggerWord: string;
  entityType: EntityType;
  transforms: TransformSpec[] | null;
  captioning: { strategy: CaptionStrategy; prompt: string | null };
}

export type PreprocessStage = 'downloading' | 'validating' | 'transforming' | 'captioning' | 'finalizing';

export interface PreprocessHooks {
  onProgress(p: { stage: PreprocessStage; processed: number; total: number }): void | Promise<void>;
  /** Checked between files; an abort surfaces as the signal's reason (an AbortError). */
  signal: AbortSignal;
}

export interface PreprocessResult {
  datasetDir: string;
  manifestPath: string;
  accepted: number;
  rejected: { source: string; reason: string }[];
}

/** Its message is the task's error_message: what was wrong, then each rejected source and why. */
export class PreprocessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PreprocessError';
  }
}

/** FastAPI-style validation issue, so the API can answer 422 with `detail: Issue[]`. */
export interface Issue {
  loc: (string | number)[];
  msg: string;
  type: string;
}

export interface ZipLimits {
  maxEntries: number;
  /** Real inflated bytes of one entry (headers are not trusted). */
  maxEntryBytes: number;
  /** Real inflated bytes of the whole archive. */
  maxTotalBytes: number;
}

/** Knobs with production defaults; tests shorten the timeouts and backoff. */
export interface PreprocessOptions {
  connectTimeoutMs?: number;
  timeoutMs?: number;
  retryBackoffMs?: number;
  downloadConcurrency?: number;
  imageConcurrency?: number;
  zipLimits?: Partial<ZipLimits>;
  lookup?: Resolver;
  /** Origins exempt from the private-address rule (see OutboundPolicy.allowedOrigins). */
  allowedOrigins?: string[];
}
