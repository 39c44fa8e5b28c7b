import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, openHarness } from '../helpers/harness.js';

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
