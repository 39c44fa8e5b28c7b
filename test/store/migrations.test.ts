import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { GENERATION_STATUSES, TRAINING_STATUSES } from '../../src/domain/lifecycle.js';
import type { Store } from '../../src/store/db.js';
import { DIALECTS, openHarness } from '../helpers/harness.js';

/** The quoted words of the CHECK on a table's status column, as the database itself reports it. */
async function statusCheck(store: Store, table: string): Promise<string[]> {
  const text =
    store.dialect === 'postgres'
      ? (
          await sql<{ def: string }>`select pg_get_constraintdef(c.oid) as def from pg_constraint c
            where c.conrelid = ${table}::regclass and c.contype = 'c' and pg_get_constraintdef(c.oid) like '%status%'`.execute(store.db)
        ).rows.map((r) => r.def)[0]
      : /status in \(([^)]*)\)/i.exec((await sql<{ sql: string }>`select sql from sqlite_master where name = ${table}`.execute(store.db)).rows[0].sql)?.[1];
  assert.ok(text, `no CHECK on ${table}.status`);
  return [...text.matchAll(/'([A-Z_]+)'/g)].map((m) => m[1]);
}

describe('migrations', () => {
  if (DIALECTS.includes('postgres')) {
    test('a second Kiln in another schema of the same Postgres database migrates on its own', async () => {
      const first = await openHarness('postgres');
      const second = await openHarness('postgres');
      try {
        const tables = await second.runtime.store.db.introspection.getTables();
        assert.ok(tables.some((t) => t.name === 'training_tasks'));
        const res = await second.app.inject({ method: 'GET', url: '/readyz' });
        assert.equal(res.statusCode, 200);
      } finally {
        await second.close();
        await first.close();
      }
    });
  }

  for (const dialect of DIALECTS) {
    test(`the CHECK on each status column is exactly the lifecycle's status list (${dialect})`, async () => {
      const h = await openHarness(dialect);
      try {
        assert.deepEqual((await statusCheck(h.runtime.store, 'training_tasks')).sort(), [...TRAINING_STATUSES].sort());
        assert.deepEqual((await statusCheck(h.runtime.store, 'generations')).sort(), [...GENERATION_STATUSES].sort());
      } finally {
        await h.close();
      }
    });

    test(`migrating twice is a no-op (${dialect})`, async () => {
      const h = await openHarness(dialect);
      try {
        const { migrate } = await import('../../src/store/migrations.js');
        await migrate(h.runtime.store.db, h.runtime.store.dialect);
        await migrate(h.runtime.store.db, h.runtime.store.dialect);
        const rows = await h.runtime.store.db.selectFrom('training_tasks').selectAll().execute();
        assert.deepEqual(rows, []);
      } finally {
        await h.close();
      }
    });
  }
});
