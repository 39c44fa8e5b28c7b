import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { checkOutboundUrl, type OutboundPolicy, type VettedUrl } from './outbound.js';

export interface SafeRequestOptions extends OutboundPolicy {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Time allowed to open the TCP connection. */
  connectTimeoutMs?: number;
  /** Time allowed for the whole exchange, body included. */
  timeoutMs?: number;
  /** Largest body accepted, counted as it arrives (Content-Length is not trusted). */
  maxBytes?: number;
  signal?: AbortSignal;
  /** Stream a 2xx body to this file instead of buffering it; other bodies are discarded. */
  toFile?: string;
}

export interface SafeResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** Empty when the body went to `toFile` or was discarded. */
  body: Buffer;
  bytes: number;
  sha256: string;
  /** The URL requested and the address actually connected to. */
  url: string;
  address: string;
}

export type FetchFailure = 'connect_timeout' | 'timeout' | 'too_large' | 'network' | 'aborted';

export class FetchError extends Error {
  constructor(
    message: string,
    readonly failure: FetchFailure,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'FetchError';
  }
}

const DEFAULTS = { connectTimeoutMs: 10_000, timeoutMs: 60_000, maxBytes: 50 * 1024 * 1024 };

/** A `lookup` that always answers with the vetted address, so the socket cannot go elsewhere. */
function pinnedLookup(vetted: VettedUrl): LookupFunction {
  return ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, [{ address: vetted.address, family: vetted.family }]);
    else callback(null, vetted.address, vetted.family);
  }) as LookupFunction;
}

const seconds = (ms: number) => `${+(ms / 1000).toFixed(3)} s`;

/**
 * One HTTP exchange with an outbound-URL guard: the URL is vetted, the connection is pinned
 * to the vetted address, time and size are bounded, and redirects are returned to the
 * caller (who must vet the Location again by calling this once more).
 */
export async function safeRequest(input: string | URL, options: SafeRequestOptions): Promise<SafeResponse> {
  options.signal?.throwIfAborted();
  const vetted = await checkOutboundUrl(input, options);
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
  const timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
  const maxBytes = options.maxBytes ?? DEFAULTS.maxBytes;
  const transport = vetted.url.protocol === 'https:' ? https : http;

  return new Promise<SafeResponse>((resolve, reject) => {
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (err: Error | null, value?: SafeResponse) => {
      if (settled) return;
      settled = true;
      timers.forEach(clearTimeout);
      options.signal?.removeEventListener('abort', onAbort);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(value!);
    };
    const onAbort = () => finish(new FetchError('request aborted', 'aborted'));

    const req = transport.request(vetted.url, {
      method: options.method ?? 'GET',
      headers: options.headers,
      lookup: pinnedLookup(vetted),
      agent: false,
    });
    options.signal?.addEventListener('abort', onAbort, { once: true });
    timers.push(setTimeout(() => finish(new FetchError(`timed out after ${seconds(timeoutMs)}`, 'timeout')), timeoutMs));
    const connectTimer = setTimeout(() => finish(new FetchError(`could not connect within ${seconds(connectTimeoutMs)}`, 'connect_timeout')), connectTimeoutMs);
    timers.push(connectTimer);
    req.on('socket', (socket) => socket.once('connect', () => clearTimeout(connectTimer)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      finish(new FetchError(`connection failed (${err.code ?? err.message})`, 'network', err.code));
    });
    req.on('response', (res) => {
      readBody(res, vetted, options, maxBytes).then(
        (r) => finish(null, r),
        (err: Error) => finish(err),
      );
    });
    req.end(options.body);
  });
}

async function readBody(res: IncomingMessage, vetted: VettedUrl, options: SafeRequestOptions, maxBytes: number): Promise<SafeResponse> {
  const status = res.statusCode ?? 0;
  const base = { status, headers: res.headers, url: vetted.url.href, address: vetted.address };
  const toFile = options.toFile && status >= 200 && status < 300 ? options.toFile : undefined;
  if (options.toFile && !toFile) {
    res.destroy();
    return { ...base, body: Buffer.alloc(0), bytes: 0, sha256: '' };
  }
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    res.destroy();
    throw new FetchError(`response is ${declared} bytes, over the ${maxBytes}-byte limit`, 'too_large');
  }

  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  const sink = toFile
    ? createWriteStream(toFile)
    : new Writable({
        write(chunk: Buffer, _encoding, done) {
          chunks.push(chunk);
          done();
        },
      });
  let bytes = 0;
  try {
    await pipeline(
      res,
      async function* count(source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          bytes += chunk.length;
          if (bytes > maxBytes) throw new FetchError(`response exceeds the ${maxBytes}-byte limit`, 'too_large');
          hash.update(chunk);
          yield chunk;
        }
      },
      sink,
    );
  } catch (err) {
    if (toFile) await rm(toFile, { force: true });
    if (err instanceof FetchError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new FetchError(`connection failed while reading (${code ?? (err as Error).message})`, 'network', code);
  }
  return { ...base, body: Buffer.concat(chunks), bytes, sha256: hash.digest('hex') };
}
