import autocannon from 'autocannon';
import { percentile } from './stats.js';

export interface LoadSpec {
  /** Base URL, e.g. http://127.0.0.1:1234 */
  url: string;
  method: 'GET' | 'POST';
  /** Paths cycled through, one per request (e.g. different task ids). */
  paths: string[];
  headers: Record<string, string>;
  body?: string;
  connections: number;
  durationS: number;
}

export interface LoadResult {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  ok: number;
  /** Non-2xx answers + socket errors + timeouts. */
  errors: number;
  statusCodes: Record<string, number>;
  seconds: number;
  /** Each 2xx response's time, in ms, for merging runs. */
  latencies: number[];
}

/**
 * One fixed-duration autocannon run. Latencies are taken from the per-response event rather
 * than autocannon's histogram, which keeps whole milliseconds only: these endpoints answer
 * in about a millisecond, so the fraction matters.
 */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  let next = 0;
  const latencies: number[] = [];
  const instance = autocannon({
    url: spec.url,
    connections: spec.connections,
    duration: spec.durationS,
    timeout: 10,
    requests: [
      {
        method: spec.method,
        headers: spec.headers,
        body: spec.body,
        setupRequest: (req) => ({ ...req, path: spec.paths[next++ % spec.paths.length] }),
      },
    ],
  });
  instance.on('response', (_client, statusCode, _bytes, responseTime) => {
    if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
  });
  const result = await instance;
  const statusCodes = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count]));
  return {
    rps: result['2xx'] / result.duration,
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
    ok: result['2xx'],
    errors: result.non2xx + result.errors + result.timeouts,
    statusCodes,
    seconds: result.duration,
    latencies,
  };
}

/** Several runs of one spec as if they were one: requests over total seconds, percentiles of all responses. */
export function mergeLoads(runs: LoadResult[]): LoadResult {
  const latencies = runs.flatMap((r) => r.latencies);
  const ok = runs.reduce((n, r) => n + r.ok, 0);
  const seconds = runs.reduce((n, r) => n + r.seconds, 0);
  const statusCodes: Record<string, number> = {};
  for (const r of runs) for (const [code, n] of Object.entries(r.statusCodes)) statusCodes[code] = (statusCodes[code] ?? 0) + n;
  return {
    rps: ok / seconds,
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
    ok,
    errors: runs.reduce((n, r) => n + r.errors, 0),
    statusCodes,
    seconds,
    latencies,
  };
}
