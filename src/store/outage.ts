import type { Logger } from 'pino';

/**
 * Errors that say the database cannot serve us right now, as opposed to a query or a value
 * that is wrong. The API answers these with 503 and Retry-After; the worker retries or
 * coalesces the write instead of failing the job.
 */
export interface Unavailable {
  /** In words, for a 503's detail and the log. */
  reason: string;
  /** How long a client should wait before trying again. */
  retryAfterSeconds: number;
}

/** Socket errors: the server or the path to it is gone. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** Postgres SQLSTATEs that mean "not now": the connection-exception class 08, shutdowns, too many connections, a read-only standby. */
const PG_UNAVAILABLE = /^(08...|57P0[1-3]|53300|25006)$/;

/** node-postgres words a lost connection in the message alone. */
const PG_CONNECTION_LOST = /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|Query read timeout|Connection closed/i;

const SQLITE: Record<string, Unavailable> = {
  SQLITE_BUSY: { reason: 'the database is locked by another process', retryAfterSeconds: 1 },
  SQLITE_LOCKED: { reason: 'the database is locked by another process', retryAfterSeconds: 1 },
  SQLITE_READONLY: { reason: 'the database file is read-only', retryAfterSeconds: 30 },
  SQLITE_FULL: { reason: 'the disk holding the database is full', retryAfterSeconds: 30 },
  SQLITE_IOERR: { reason: 'the database file could not be read or written', retryAfterSeconds: 30 },
  SQLITE_CANTOPEN: { reason: 'the database file could not be opened', retryAfterSeconds: 30 },
};

export function databaseUnavailable(err: unknown): Unavailable | null {
  if (!(err instanceof Error)) return null;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    // better-sqlite3 extends the primary code (SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED, …).
    const sqlite = Object.keys(SQLITE).find((primary) => code === primary || code.startsWith(`${primary}_`));
    if (sqlite) return SQLITE[sqlite];
    if (NETWORK_CODES.has(code)) return { reason: `the database cannot be reached (${code})`, retryAfterSeconds: 5 };
    if (PG_UNAVAILABLE.test(code)) return { reason: `the database is not accepting work (${code}: ${err.message})`, retryAfterSeconds: 5 };
  }
  if (PG_CONNECTION_LOST.test(err.message)) return { reason: `the database connection was lost (${err.message})`, retryAfterSeconds: 5 };
  return null;
}

/** Runs `run` until it does not fail as "unavailable", backing off from 250 ms to 2 s, for at most `patienceMs`. */
export async function untilAvailable<T>(run: () => Promise<T>, patienceMs: number): Promise<T> {
  const giveUpAt = Date.now() + patienceMs;
  for (let delay = 250; ; delay = Math.min(delay * 2, 2000)) {
    try {
      return await run();
    } catch (err) {
      if (!databaseUnavailable(err) || Date.now() + delay > giveUpAt) throw err;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/**
 * One line when the database goes away and one when it is back, however many loops keep
 * failing in between: a 30-second outage would otherwise log a few hundred identical errors.
 */
export class OutageLog {
  private since: number | null = null;
  private failures = 0;

  constructor(private readonly log: Logger) {}

  get down(): boolean {
    return this.since !== null;
  }

  /** Reports a failure of `what`; true when it was the database being unavailable (already logged). */
  failed(err: unknown, what: string): boolean {
    const unavailable = databaseUnavailable(err);
    if (!unavailable) return false;
    this.failures++;
    if (this.since === null) {
      this.since = Date.now();
      this.log.warn({ what, reason: unavailable.reason }, 'database unavailable; retrying until it is back');
    }
    return true;
  }

  ok(): void {
    if (this.since === null) return;
    this.log.warn({ seconds: (Date.now() - this.since) / 1000, failedCalls: this.failures }, 'database is back');
    this.since = null;
    this.failures = 0;
  }
}
