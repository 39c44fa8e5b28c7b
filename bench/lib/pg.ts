import pg from 'pg';

/** The Postgres benches use: the test database unless KILN_BENCH_DATABASE_URL names another. */
export const BENCH_PG_URL =
  process.env.KILN_BENCH_DATABASE_URL ?? process.env.KILN_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface BenchSchema {
  name: string;
  /** BENCH_PG_URL with search_path set, for clients that only take a URL (the Python baseline). */
  url: string;
  drop(): Promise<void>;
}

async function run(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: BENCH_PG_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/**
 * Kysely's Migrator decides whether its bookkeeping tables exist by looking in every schema
 * of the database, then uses them through search_path. While another schema holds them (a
 * test run beside the bench), migrating a fresh schema skips creating them and fails with
 * 'relation "kysely_migration_lock" does not exist'. Creating them up front, with the
 * Migrator's own definitions, makes the bench independent of what else is in the database.
 */
const MIGRATOR_TABLES = (schema: string) => `
  create table ${schema}.kysely_migration (name varchar(255) not null primary key, timestamp varchar(255) not null);
  create table ${schema}.kysely_migration_lock (id varchar(255) not null primary key, is_locked integer not null default 0);`;

/** A fresh schema per bench run, so benches never see test rows or each other's. */
export async function createBenchSchema(prefix = 'kiln_bench'): Promise<BenchSchema> {
  const name = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  await run(`create schema ${name}; ${MIGRATOR_TABLES(name)}`);
  const sep = BENCH_PG_URL.includes('?') ? '&' : '?';
  return {
    name,
    url: `${BENCH_PG_URL}${sep}options=${encodeURIComponent(`-c search_path=${name}`)}`,
    drop: () => run(`drop schema if exists ${name} cascade`),
  };
}
