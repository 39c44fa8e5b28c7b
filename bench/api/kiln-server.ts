/**
 * The Kiln API as the bench loads it: the real buildApp over the real runtime, listening on
 * 127.0.0.1 on a free port, with no worker (the bench measures the API alone). Started by
 * api.ts in its own process so that it does not share an event loop with the load generator;
 * it answers the port over IPC.
 *
 * Env: KILN_DATA_DIR, KILN_DATABASE_URL, KILN_JWT_SECRET (read by loadConfig as the real
 * server does) and BENCH_PG_SCHEMA for a Postgres run.
 */
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { openRuntime } from '../../src/runtime.js';

// pino at warn: no per-request log lines, as uvicorn's access log is off for the baseline.
const config = { ...loadConfig(process.env), logLevel: 'warn', host: '127.0.0.1', port: 0 };
const runtime = await openRuntime(config, { pgSchema: process.env.BENCH_PG_SCHEMA || undefined });
const app = await buildApp(runtime, { logger: { level: 'warn' } });
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
const port = typeof address === 'object' && address ? address.port : 0;
process.send?.({ type: 'listening', port });

let closing = false;
async function shutdown(): Promise<void> {
  if (closing) return;
  closing = true;
  await app.close();
  await runtime.close();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown());
process.on('disconnect', () => void shutdown());
