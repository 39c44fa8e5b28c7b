import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

export const DEFAULT_SERVER = 'http://127.0.0.1:8000';

/** Waits between the attempts of a create: a dropped connection or a database restart passes in seconds. */
const CREATE_RETRY_DELAYS_MS = [1000, 3000];

/** Options every client command takes; env vars let a shell session set them once. */
export const CONNECTION_OPTIONS = {
  server: { type: 'string' },
  token: { type: 'string' },
} as const;

export const CONNECTION_USAGE = `  --server URL   Kiln API (default $KILN_SERVER or ${DEFAULT_SERVER})
  --token T      bearer token (default $KILN_TOKEN; mint one with "kiln token")`;

/** A mistake in the command line: printed with the command's usage, exit 2. */
export class UsageError extends Error {}

/** A non-2xx answer, its message already in the words a person should read. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(describeError(status, body));
  }
}

/** The server could not be reached, or the connection broke; `code` is the socket's. */
export class Unreachable extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
}

/** FastAPI's shapes: a 422 lists each issue on its own line, anything else has one `detail`. */
function describeError(status: number, body: unknown): string {
  const detail = (body as { detail?: unknown } | null)?.detail;
  if (status === 422 && Array.isArray(detail)) {
    const lines = (detail as ValidationIssue[]).map((i) => `  ${i.loc.join('.')}: ${i.msg}`);
    return `the request was rejected (422):\n${lines.join('\n')}`;
  }
  const hint = status === 401 ? '\n  pass --token or set KILN_TOKEN (mint one with "kiln token")' : '';
  if (typeof detail === 'string') return `${detail} (HTTP ${status})${hint}`;
  return `HTTP ${status}${typeof body === 'string' && body ? `: ${body}` : ''}`;
}

export class KilnClient {
  readonly baseUrl: string;
  private readonly headers: Record<string, string>;

  constructor(server: string, token: string | undefined) {
    this.baseUrl = server.replace(/\/+$/, '');
    this.headers = token ? { authorization: `Bearer ${token}` } : {};
  }

  static fromOptions(values: Record<string, unknown>): KilnClient {
    const server = (values.server as string | undefined) ?? process.env.KILN_SERVER ?? DEFAULT_SERVER;
    return new KilnClient(server, (values.token as string | undefined) ?? process.env.KILN_TOKEN);
  }

  /** fetch with the token, relative paths under the server, and a readable connection error. */
  async request(pathOrUrl: string, init: RequestInit = {}): Promise<Response> {
    const url = /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : `${this.baseUrl}${pathOrUrl}`;
    let res: Response;
    try {
      res = await fetch(url, { ...init, headers: { ...this.headers, ...(init.headers as Record<string, string>) } });
    } catch (err) {
      throw this.unreachable(err);
    }
    if (!res.ok) {
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: keep the text
      }
      throw new ApiError(res.status, body);
    }
    return res;
  }

  async json<T>(method: string, apiPath: string, body?: unknown): Promise<T> {
    const res = await this.request(apiPath, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return (await res.json()) as T;
  }

  /**
   * A create (POST) made safe to retry: it carries an Idempotency-Key, and a request that may
   * have reached the server (the connection dropped, a timeout, a 503 while its database
   * restarts) is sent again with the same key, so at most one task is created whichever
   * attempt got through.
   */
  async createOnce<T>(apiPath: string, body: unknown, retryDelaysMs = CREATE_RETRY_DELAYS_MS): Promise<T> {
    const key = randomUUID();
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.request(apiPath, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify(body) });
        return (await res.json()) as T;
      } catch (err) {
        // A refused connection never reached the server: say so at once rather than retry.
        const retryable = err instanceof ApiError ? err.status === 503 : !(err instanceof Unreachable && err.code === 'ECONNREFUSED');
        if (!retryable || attempt >= retryDelaysMs.length) throw err;
        await new Promise((r) => setTimeout(r, retryDelaysMs[attempt]));
      }
    }
  }

  /**
   * Streams a download to `dest` through a .part file, hashing on the way; a wrong
   * sha256 leaves nothing behind, so a half-written file is never mistaken for the real one.
   */
  async download(pathOrUrl: string, dest: string, expectedSha256?: string): Promise<string> {
    const res = await this.request(pathOrUrl);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    const part = `${dest}.part`;
    const hash = createHash('sha256');
    const hasher = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        done(null, chunk);
      },
    });
    try {
      await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), hasher, fs.createWriteStream(part));
    } catch (err) {
      fs.rmSync(part, { force: true });
      throw this.unreachable(err);
    }
    const sha256 = hash.digest('hex');
    if (expectedSha256 && sha256 !== expectedSha256) {
      fs.rmSync(part, { force: true });
      throw new Error(`${pathOrUrl}: sha256 ${sha256} does not match the listed ${expectedSha256}`);
    }
    fs.renameSync(part, dest);
    return sha256;
  }

  private unreachable(err: unknown): Error {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code === 'ECONNREFUSED') return new Unreachable(`cannot reach Kiln at ${this.baseUrl}: is \`make run\` running?`, cause.code);
    if (cause) return new Unreachable(`cannot reach Kiln at ${this.baseUrl}: ${cause.code ?? cause.message}`, cause.code);
    return err as Error;
  }
}

/**
 * Runs a client command, turning its failures into a message and an exit code: 2 for a
 * usage mistake (with the usage), 1 for anything the server or the network said.
 */
export async function runClient(name: string, usage: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`kiln ${name}: ${err.message}\n\n${usage}`);
      return 2;
    }
    console.error(`kiln ${name}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

/** An integer or number flag, checked only for being a number: the server judges its range. */
export function numberOption(values: Record<string, unknown>, name: string): number | undefined {
  const raw = values[name] as string | undefined;
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} wants a number, got "${raw}"`);
  return n;
}

/** The one positional a per-task command needs. */
export function taskIdArgument(positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError('give exactly one task id');
  return positionals[0];
}
