import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { testConfig, type Config } from '../../src/config.js';
import { openRuntime, type Runtime } from '../../src/runtime.js';
import type { Dialect } from '../../src/store/db.js';
import { untilAvailable } from '../../src/store/outage.js';

/** The Postgres every test run uses; CI's .ci/run makes sure it is up. */
export const TEST_PG_URL = process.env.KILN_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Every store-touching suite runs once per dialect. KILN_TEST_SKIP_PG=1 drops Postgres locally. */
export const DIALECTS: Dialect[] = process.env.KILN_TEST_SKIP_PG === '1' ? ['sqlite'] : ['sqlite', 'postgres'];

export function tmpDir(prefix = 'kiln-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * One statement on its own connection. CI's Postgres is shared by two test files at a time and
 * by a pytest run on the same two cores: a connect or a catalog lock can be refused or time out
 * there, so what "the database is unavailable" covers is retried for a while, as Kiln does.
 */
async function adminQuery(statement: string): Promise<void> {
  const once = async () => {
    const client = new pg.Client({ connectionString: TEST_PG_URL, connectionTimeoutMillis: 10_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query(statement);
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  await untilAvailable(once, 30_000).catch((err: Error) => {
    throw new Error(`test Postgres: ${statement}: ${err.message}`, { cause: err });
  });
}

/** A fresh Postgres schema per harness, so suites never see each other's rows. */
export async function createPgSchema(): Promise<{ name: string; drop(): Promise<void> }> {
  const name = `kiln_t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  await adminQuery(`create schema ${name}`);
  return { name, drop: () => adminQuery(`drop schema if exists ${name} cascade`) };
}

export interface Harness {
  dialect: Dialect;
  config: Config;
  runtime: Runtime;
  app: FastifyInstance;
  /** A bearer header for a tenant (admin adds the training:admin scope). */
  auth(tenant?: string | null, opts?: { admin?: boolean; ttlSeconds?: number; monthlyTrainingHours?: number }): Promise<Record<string, string>>;
  close(): Promise<void>;
}

export async function openHarness(dialect: Dialect, overrides: Partial<Config> = {}): Promise<Harness> {
  const dataDir = tmpDir();
  const schema = dialect === 'postgres' ? await createPgSchema() : null;
  const config = testConfig(dataDir, { databaseUrl: dialect === 'postgres' ? TEST_PG_URL : '', ...overrides });
  const runtime = await openRuntime(config, { pgSchema: schema?.name });
  const app = await buildApp(runtime, { logger: false });
  await app.ready();
  return {
    dialect,
    config,
    runtime,
    app,
    async auth(tenant = 'acme', opts = {}) {
      const token = await runtime.verifier.mint!({ tenantId: tenant, admin: opts.admin, ttlSeconds: opts.ttlSeconds, monthlyTrainingHours: opts.monthlyTrainingHours });
      return { authorization: `Bearer ${token}` };
    },
    async close() {
      await app.close();
      await runtime.close();
      await schema?.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
