/**
 * The state machines of the two kinds of row a worker runs: the one table each status write is
 * checked against. Writers never set a status blindly: the store turns each transition into
 * `UPDATE … WHERE status = :from`, so a late writer cannot leave a terminal state.
 */

/** Statuses, the terminal ones, and from -> to per named transition; an absent pair is refused. */
export interface Lifecycle<S extends string, T extends string> {
  statuses: readonly S[];
  terminal: readonly S[];
  transitions: Record<T, Partial<Record<S, S>>>;
}

/**
 * Training tasks.
 *
 *   PENDING -> PREPROCESSING -> QUEUED -> TRAINING -> COMPLETED
 *   any non-terminal -> CANCELLED          any non-terminal -> FAILED
 *   a lost lease: PREPROCESSING -> PENDING, TRAINING -> QUEUED (attempt + 1)
 *   retry: FAILED | CANCELLED -> PENDING (preprocessing skips what it already fetched)
 */
export const TRAINING_STATUSES = ['PENDING', 'PREPROCESSING', 'QUEUED', 'TRAINING', 'COMPLETED', 'FAILED', 'CANCELLED'] as const;
export type TrainingStatus = (typeof TRAINING_STATUSES)[number];

export type TransitionName = 'claim_preprocessing' | 'finish_preprocessing' | 'claim_training' | 'complete' | 'fail' | 'cancel' | 'release' | 'retry';

export const TRAINING_LIFECYCLE: Lifecycle<TrainingStatus, TransitionName> = {
  statuses: TRAINING_STATUSES,
  terminal: ['COMPLETED', 'FAILED', 'CANCELLED'],
  transitions: {
    claim_preprocessing: { PENDING: 'PREPROCESSING' },
    finish_preprocessing: { PREPROCESSING: 'QUEUED' },
    claim_training: { QUEUED: 'TRAINING' },
    complete: { TRAINING: 'COMPLETED' },
    fail: { PREPROCESSING: 'FAILED', TRAINING: 'FAILED', PENDING: 'FAILED', QUEUED: 'FAILED' },
    cancel: { PENDING: 'CANCELLED', PREPROCESSING: 'CANCELLED', QUEUED: 'CANCELLED', TRAINING: 'CANCELLED' },
    release: { PREPROCESSING: 'PENDING', TRAINING: 'QUEUED' },
    retry: { FAILED: 'PENDING', CANCELLED: 'PENDING' },
  },
};

/**
 * Generations: one stage, short and interactive.
 *
 *   PENDING -> RUNNING -> COMPLETED
 *   any non-terminal -> CANCELLED          any non-terminal -> FAILED
 *   a lost lease: RUNNING -> PENDING (attempt + 1)
 *   retry: FAILED | CANCELLED -> PENDING
 */
export const GENERATION_STATUSES = ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'] as const;
export type GenerationStatus = (typeof GENERATION_STATUSES)[number];

export type GenerationTransition = 'claim' | 'complete' | 'fail' | 'cancel' | 'release' | 'retry';

export const GENERATION_LIFECYCLE: Lifecycle<GenerationStatus, GenerationTransition> = {
  statuses: GENERATION_STATUSES,
  terminal: ['COMPLETED', 'FAILED', 'CANCELLED'],
  transitions: {
    claim: { PENDING: 'RUNNING' },
    complete: { RUNNING: 'COMPLETED' },
    fail: { PENDING: 'FAILED', RUNNING: 'FAILED' },
    cancel: { PENDING: 'CANCELLED', RUNNING: 'CANCELLED' },
    release: { RUNNING: 'PENDING' },
    retry: { FAILED: 'PENDING', CANCELLED: 'PENDING' },
  },
};

/** The status a transition leads to from `from`, or null when the table forbids it. */
export function nextStatus<S extends string, T extends string>(lifecycle: Lifecycle<S, T>, transition: T, from: string): S | null {
  return (lifecycle.transitions[transition] as Partial<Record<string, S>>)[from] ?? null;
}

/** The single from -> to pair of a transition that has exactly one (the claims, finishes). */
export function onlyEdge<S extends string, T extends string>(lifecycle: Lifecycle<S, T>, transition: T): { from: S; to: S } {
  const edges = Object.entries(lifecycle.transitions[transition]) as [S, S][];
  if (edges.length !== 1) throw new Error(`transition ${transition} has ${edges.length} edges, not one`);
  return { from: edges[0][0], to: edges[0][1] };
}

/** Statuses a worker holds a row in: those a lost lease releases back to the queue. */
export function runningStatuses<S extends string, T extends string>(lifecycle: Lifecycle<S, T> & { transitions: Record<'release', Partial<Record<S, S>>> }): S[] {
  return Object.keys(lifecycle.transitions.release) as S[];
}

/** Statuses a claim takes rows from: those a lost lease returns a row to. */
export function waitingStatuses<S extends string, T extends string>(lifecycle: Lifecycle<S, T> & { transitions: Record<'release', Partial<Record<S, S>>> }): S[] {
  return [...new Set(Object.values(lifecycle.transitions.release) as S[])];
}

export function isTerminal(status: string): boolean {
  return (TRAINING_LIFECYCLE.terminal as readonly string[]).includes(status);
}
