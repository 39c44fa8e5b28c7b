import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics/metrics.js';
import { FetchError, OutboundUrlError, safeRequest } from '../net/index.js';
import type { Store, WebhookDeliveryRow } from '../store/db.js';
import { OutageLog } from '../store/outage.js';
import { isoIn, isoNow } from '../util/time.js';
import { signedHeaders, webhookSecret } from './signing.js';

/** Seconds before each retry: about 28 hours in all, so a receiver down for a day still gets it. */
export const RETRY_DELAYS_S = [5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200];

export interface DelivererOptions {
  store: Store;
  config: Config;
  log: Logger;
  metrics?: Metrics;
  retryDelaysMs?: number[];
  pollMs?: number;
  timeoutMs?: number;
  /** How long a claimed delivery stays invisible to other processes while it is attempted. */
  inFlightMs?: number;
}

/** ±20% so receivers coming back up are not hit by every sender in the same second. */
function jitter(ms: number): number {
  return Math.round(ms * (0.8 + Math.random() * 0.4));
}

/**
 * Sends the outbox: each due delivery is claimed with a compare-and-set on its attempt count
 * (so two processes never send the same attempt), POSTed with Standard Webhooks signatures,
 * without following redirects, and retried with exponential backoff and jitter.
 */
export class WebhookDeliverer {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private readonly secret: string;
  private readonly delays: number[];
  private readonly outage: OutageLog;

  constructor(private readonly opts: DelivererOptions) {
    this.outage = new OutageLog(opts.log);
    this.secret = webhookSecret(opts.config);
    this.delays = opts.retryDelaysMs ?? RETRY_DELAYS_S.map((s) => s * 1000);
  }

  start(): void {
    this.timer = setInterval(() => void this.runOnce(), this.opts.pollMs ?? 1000);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Attempts every delivery that is due now; returns how many were attempted. */
  async runOnce(): Promise<number> {
    if (this.busy) return 0;
    this.busy = true;
    try {
      const due = await this.opts.store.db
        .selectFrom('webhook_deliveries')
        .selectAll()
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', isoNow())
        .orderBy('next_attempt_at')
        .limit(16)
        .execute();
      let attempted = 0;
      await Promise.all(
        due.map(async (d) => {
          if (await this.claim(d)) {
            attempted++;
            await this.attempt({ ...d, attempts: d.attempts + 1 });
          }
        }),
      );
      this.outage.ok();
      return attempted;
    } catch (err) {
      // A delivery whose result could not be written is sent again later: at least once, as promised.
      if (!this.outage.failed(err, 'webhook delivery')) this.opts.log.error({ err }, 'webhook delivery pass failed');
      return 0;
    } finally {
      this.busy = false;
    }
  }

  private async claim(d: WebhookDeliveryRow): Promise<boolean> {
    const res = await this.opts.store.db
      .updateTable('webhook_deliveries')
      .set({ attempts: d.attempts + 1, next_attempt_at: isoIn(this.opts.inFlightMs ?? 60_000) })
      .where('id', '=', d.id)
      .where('status', '=', 'pending')
      .where('attempts', '=', d.attempts)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  private async attempt(d: WebhookDeliveryRow): Promise<void> {
    const timestamp = Math.floor(Date.now() / 1000);
    let statusCode: number | null = null;
    let error: string | null = null;
    try {
      const res = await safeRequest(d.url, {
        method: 'POST',
        headers: signedHeaders(this.secret, d.id, timestamp, d.payload),
        body: d.payload,
        allowPrivateNetworks: this.opts.config.allowPrivateNetworks,
        label: 'webhook_url',
        connectTimeoutMs: this.opts.timeoutMs ?? 10_000,
        timeoutMs: this.opts.timeoutMs ?? 10_000,
        maxBytes: 64 * 1024,
      });
      statusCode = res.status;
      if (res.status >= 300 && res.status < 400) error = `redirect to ${String(res.headers.location ?? '?')} not followed`;
      else if (res.status >= 300) error = `receiver answered HTTP ${res.status}`;
    } catch (err) {
      error = err instanceof FetchError || err instanceof OutboundUrlError ? err.message : String((err as Error)?.message ?? err);
    }
    const db = this.opts.store.db.updateTable('webhook_deliveries').where('id', '=', d.id);
    if (!error) {
      await db.set({ status: 'delivered', delivered_at: isoNow(), last_status_code: statusCode, last_error: null }).execute();
      this.opts.metrics?.webhookOutcomes.inc({ outcome: 'delivered' });
      return;
    }
    const delay = this.delays[d.attempts - 1];
    const giveUp = delay === undefined;
    await db
      .set({
        status: giveUp ? 'failed' : 'pending',
        next_attempt_at: giveUp ? isoNow() : isoIn(jitter(delay)),
        last_status_code: statusCode,
        last_error: error,
      })
      .execute();
    this.opts.metrics?.webhookOutcomes.inc({ outcome: giveUp ? 'failed' : 'retry' });
    this.opts.log.warn({ delivery: d.id, url: d.url, attempt: d.attempts, error, giveUp }, 'webhook delivery failed');
  }
}
