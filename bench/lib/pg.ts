import pg from 'pg';

/** The Postgres benches use: the test database unless KILN_BENCH_DATABASE_URL names another. */
export const BENCH_PG_URL = process.env.KILN_BENCH_DATABASE_URL ?? process.env.KILN_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

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

/** A fresh schema per bench run, so benches never see test rows or each other's. */
export async function createBenchSchema(prefix = 'kiln_bench'): Promise<BenchSchema> {
  const name = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  await run(`create schema ${name}`);
  const sep = BENCH_PG_URL.includes('?') ? '&' : '?';
  return {
    name,
    url: `${BENCH_PG_URL}${sep}options=${encodeURIComponent(`-c search_path=${name}`)}`,
    drop: () => run(`drop schema if exists ${name} cascade`),
  };
}
