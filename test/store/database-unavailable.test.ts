import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { sql } from 'kysely';
import { databaseUnavailable } from '../../src/store/outage.js';
import { openHarness, type Harness } from '../helpers/harness.js';

const CREATE = { trigger_word: 'TOK', source_images: ['https://example.com/a.jpg'] };

async function countTasks(h: Harness): Promise<number> {
  const row = await h.runtime.store.db
    .selectFrom('training_tasks')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

// The SQLite side of "the database is unavailable": a clear 503 that says why, and no half-written row.
describe('SQLite that cannot take a write (embedded default)', () => {
  let h: Harness;
  let headers: Record<string, string>;
  before(async () => {
    h = await openHarness('sqlite');
    headers = await h.auth('acme');
  });
  after(() => h.close());

  test('a read-only database: creation is a 503 that says so, reads still work, nothing is written', async () => {
    const before = await countTasks(h);
    await sql`pragma query_only = 1`.execute(h.runtime.store.db);
    try {
      const res = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: CREATE });
      assert.equal(res.statusCode, 503);
      assert.equal(res.headers['retry-after'], '30');
      assert.match(res.json<{ detail: string }>().detail, /read-only/);
      assert.equal((await h.app.inject({ method: 'GET', url: '/api/v1/training/', headers })).statusCode, 200);
      assert.equal(await countTasks(h), before);
    } finally {
      await sql`pragma query_only = 0`.execute(h.runtime.store.db);
    }
    assert.equal((await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: CREATE })).statusCode, 201);
  });

  test('a database locked by another process past busy_timeout: a 503 with a short Retry-After, then it works again', async () => {
    const other = new Database(path.join(h.config.dataDir, 'kiln.db'));
    const before = await countTasks(h);
    other.exec('begin exclusive');
    try {
      const res = await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: CREATE });
      assert.equal(res.statusCode, 503);
      assert.equal(res.headers['retry-after'], '1');
      assert.match(res.json<{ detail: string }>().detail, /locked by another process/);
    } finally {
      other.exec('commit');
      other.close();
    }
    assert.equal(await countTasks(h), before);
    assert.equal((await h.app.inject({ method: 'POST', url: '/api/v1/training/', headers, payload: CREATE })).statusCode, 201);
  });

  test('a full disk is named as such', () => {
    const db = new Database(':memory:');
    db.exec('create table t (x blob)');
    db.pragma(`max_page_count = ${Number(db.pragma('page_count', { simple: true }))}`);
    let caught: unknown;
    try {
      for (let i = 0; i < 100; i++) db.prepare('insert into t values (?)').run(Buffer.alloc(8192));
    } catch (err) {
      caught = err;
    }
    db.close();
    assert.match(String((caught as { code?: string })?.code), /^SQLITE_FULL/);
    assert.match(databaseUnavailable(caught)!.reason, /disk .* is full/);
  });
});

describe('which errors mean "the database is unavailable"', () => {
  const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });
  test('lost connections, shutdowns and refused connects are; a bad query or a bug is not', () => {
    assert.ok(databaseUnavailable(withCode('57P01', 'terminating connection due to administrator command')));
    assert.ok(databaseUnavailable(withCode('57P03', 'the database system is starting up')));
    assert.ok(databaseUnavailable(withCode('08006')));
    assert.ok(databaseUnavailable(withCode('ECONNREFUSED')));
    assert.ok(databaseUnavailable(new Error('Connection terminated unexpectedly')));
    assert.ok(databaseUnavailable(new Error('timeout exceeded when trying to connect')));
    assert.equal(databaseUnavailable(withCode('23505', 'duplicate key value violates unique constraint')), null);
    assert.equal(databaseUnavailable(withCode('42P01', 'relation "x" does not exist')), null);
    assert.equal(databaseUnavailable(new SyntaxError('Unexpected token')), null);
    assert.equal(databaseUnavailable('a string'), null);
  });
});
