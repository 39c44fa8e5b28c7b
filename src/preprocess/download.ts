import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { FetchError, OutboundUrlError, safeRequest, type Resolver } from '../net/index.js';

export interface DownloadSettings {
  allowPrivateNetworks: boolean;
  allowedOrigins?: string[];
  lookup?: Resolver;
  maxBytes: number;
  connectTimeoutMs: number;
  timeoutMs: number;
  retryBackoffMs: number;
  signal: AbortSignal;
}

const MAX_REDIRECTS = 3;
const RETRIES = 2;

/** A download that failed for a reason worth telling the user; becomes a rejection reason. */
export class DownloadError extends Error {}

const retryable = (err: unknown) => err instanceof FetchError && err.failure === 'network';

/**
 * Fetches `url` into `dest`. Redirects are followed by hand, at most MAX_REDIRECTS, and every
 * hop goes through safeRequest, so each Location is vetted by the outbound-URL guard again.
 * 5xx answers and dropped connections are retried with exponential backoff.
 */
export async function downloadToFile(url: string, dest: string, settings: DownloadSettings): Promise<{ sha256: string; bytes: number }> {
  const partial = `${dest}.${randomBytes(4).toString('hex')}.partial`;
  let current = url;
  for (let hop = 0; ; hop++) {
    const label = hop === 0 ? 'URL' : `redirect to ${current}`;
    for (let attempt = 0; ; attempt++) {
      settings.signal.throwIfAborted();
      let res;
      try {
        res = await safeRequest(current, {
          allowPrivateNetworks: settings.allowPrivateNetworks,
          allowedOrigins: settings.allowedOrigins,
          lookup: settings.lookup,
          label,
          maxBytes: settings.maxBytes,
          connectTimeoutMs: settings.connectTimeoutMs,
          timeoutMs: settings.timeoutMs,
          signal: settings.signal,
          toFile: partial,
          headers: { 'user-agent': 'kiln-preprocess', accept: 'image/*, application/zip, */*;q=0.5' },
        });
      } catch (err) {
        settings.signal.throwIfAborted();
        if (retryable(err) && attempt < RETRIES) {
          await sleep(settings.retryBackoffMs * 2 ** attempt, undefined, { signal: settings.signal });
          continue;
        }
        if (err instanceof OutboundUrlError) throw new DownloadError(`refused: ${err.message}`);
        if (err instanceof FetchError) throw new DownloadError(`download failed: ${err.message}`);
        throw err;
      }

      if (res.status >= 500 && attempt < RETRIES) {
        await sleep(settings.retryBackoffMs * 2 ** attempt, undefined, { signal: settings.signal });
        continue;
      }
      if (res.status >= 300 && res.status < 400 && res.headers.location) {
        if (hop >= MAX_REDIRECTS) throw new DownloadError(`download failed: too many redirects (more than ${MAX_REDIRECTS})`);
        try {
          current = new URL(res.headers.location, current).href;
        } catch {
          throw new DownloadError(`download failed: invalid redirect Location ${JSON.stringify(res.headers.location)}`);
        }
        break;
      }
      if (res.status < 200 || res.status >= 300) {
        await rm(partial, { force: true });
        throw new DownloadError(`download failed: HTTP ${res.status} from ${res.url}`);
      }
      await rename(partial, dest);
      return { sha256: res.sha256, bytes: res.bytes };
    }
  }
}
