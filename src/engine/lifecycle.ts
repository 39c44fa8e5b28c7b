/**
 * The task state machine: the one table every status write is checked against.
 *
 *   PENDING -> PREPROCESSING -> QUEUED -> TRAINING -> COMPLETED
 *   any non-terminal -> CANCELLED          any running -> FAILED
 *   a lost lease: PREPROCESSING -> PENDING, TRAINING -> QUEUED (attempt + 1)
 *   retry: FAILED | CANCELLED -> PENDING (preprocessing skips what it already fetched)
 *
 * Writers never set a status blindly: the store turns each transition into
 * `UPDATE … WHERE status = :from`, so a late writer cannot leave a terminal state.
 */
export const TRAINING_STATUSES = [
  'PENDING',
  'PREPROCESSING',
  'QUEUED',
  'TRAINING',
  'COMPLETED',
  'FAILED',
  'CANCELLED',
] as const;
export type TrainingStatus = (typeof TRAINING_STATUSES)[number];

export const TERMINAL_STATUSES: readonly TrainingStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED'];

export type TransitionName =
  | 'claim_preprocessing'
  | 'finish_preprocessing'
  | 'claim_training'
  | 'complete'
  | 'fail'
  | 'cancel'
  | 'release'
  | 'retry';

/** from -> to for each named transition; a transition absent for a status is refused. */
export const TRANSITIONS: Record<TransitionName, Partial<Record<TrainingStatus, TrainingStatus>>> = {
  claim_preprocessing: { PENDING: 'PREPROCESSING' },
  finish_preprocessing: { PREPROCESSING: 'QUEUED' },
  claim_training: { QUEUED: 'TRAINING' },
  complete: { TRAINING: 'COMPLETED' },
  fail: { PREPROCESSING: 'FAILED', TRAINING: 'FAILED', PENDING: 'FAILED', QUEUED: 'FAILED' },
  cancel: { PENDING: 'CANCELLED', PREPROCESSING: 'CANCELLED', QUEUED: 'CANCELLED', TRAINING: 'CANCELLED' },
  release: { PREPROCESSING: 'PENDING', TRAINING: 'QUEUED' },
  retry: { FAILED: 'PENDING', CANCELLED: 'PENDING' },
};

export function isTerminal(status: TrainingStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** The status a transition leads to from `from`, or null when the table forbids it. */
export function nextStatus(transition: TransitionName, from: TrainingStatus): TrainingStatus | null {
  return TRANSITIONS[transition][from] ?? null;
}
