import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Generation } from '../../src/domain/schemas/generations.js';
import { openStore, type Store } from '../../src/store/db.js';
import { startFleet, type Fleet } from '../helpers/fleet.js';
import { DIALECTS } from '../helpers/harness.js';
import { isAlive, mintToken, until } from '../helpers/processes.js';
import { api, type Target } from './scenario.js';

// Generations are a job kind of the one engine, so they survive a dead worker as training
// stages do: real processes, the real generator on the tiny model, a worker SIGKILLed while
// its generator runs, and the generation finishing on the next worker as attempt 2.
for (const dialect of DIALECTS) {
  describe(`generation failover (${dialect}, 1 API + workers)`, { timeout: 300_000 }, () => {
    let fleet: Fleet;
    let store: Store;
    let target: Target;
    before(async () => {
      // The lease outlives the generator's own stop (stdin EOF) after its worker dies.
      fleet = await startFleet({ workers: 1, dialect, env: { KILN_LEASE_SECONDS: '4' } });
      store = openStore({ databaseUrl: fleet.databaseUrl, dataDir: fleet.dataDir });
      target = { baseUrl: fleet.baseUrl, token: await mintToken('gen'), dataDir: fleet.dataDir };
    });
    after(async () => {
      await store.close();
      await fleet.stop();
    });

    test('a worker SIGKILLed mid-generation: the generation completes on another worker', async () => {
      const client = api(target);
      const created = await client.json<Generation>('POST', '/api/v1/generations/', {
        prompt: 'a red mug',
        base_model_path: 'builtin:tiny-flux',
        width: 64,
        height: 64,
        steps: 4,
        seed: 3,
      });
      assert.equal(created.status, 202, JSON.stringify(created.body));
      const id = created.body.id;

      // Catch it running, with its generator process started, and kill the worker outright.
      const log = path.join(fleet.dataDir, 'generations', id, 'generate.log');
      const running = await until(
        async () => {
          const row = await store.db.selectFrom('generations').select(['status', 'lease_owner', 'attempt']).where('id', '=', id).executeTakeFirst();
          return row?.status === 'RUNNING' && fs.existsSync(log) && row;
        },
        'the generator to start',
        60_000,
        20,
      );
      const [first] = fleet.workers;
      assert.ok(running.lease_owner!.includes(`:${first.child.pid}:`), `held by ${running.lease_owner}`);
      assert.equal(running.attempt, 1);
      await first.stop('SIGKILL');
      assert.equal(isAlive(first.child.pid!), false);

      const second = fleet.startWorker();
      const done = await until(
        async () => {
          const { body } = await client.json<Generation>('GET', `/api/v1/generations/${id}`);
          return ['COMPLETED', 'FAILED', 'CANCELLED'].includes(body.status) && body;
        },
        'the generation to finish on the second worker',
        180_000,
        200,
      );
      assert.equal(done.status, 'COMPLETED', done.error_message ?? undefined);
      assert.equal(done.attempt, 2);
      assert.equal(done.images.length, 1);
      const image = await client.bytes(new URL(done.images[0]).pathname);
      assert.equal(image.status, 200);
      assert.equal(image.type, 'image/png');

      // The event stream replays both attempts (the first cut short) and ends with the status.
      const res = await fetch(`${fleet.baseUrl}/api/v1/generations/${id}/events`, { headers: { authorization: `Bearer ${target.token}` } });
      assert.equal(res.headers.get('content-type'), 'text/event-stream');
      const names = [...(await res.text()).matchAll(/^event: (.*)$/gm)].map((m) => m[1]);
      assert.equal(names[0], 'status');
      assert.equal(names.filter((n) => n === 'image').length, 1);
      assert.ok(names.includes('completed'), names.join());
      assert.equal(names.at(-1), 'end');

      const runs = await store.db.selectFrom('stage_runs').select(['worker_id', 'outcome', 'attempt']).where('task_id', '=', id).orderBy('id').execute();
      assert.equal(runs.length, 2);
      assert.deepEqual(
        runs.map((r) => [r.attempt, r.outcome]),
        [
          [1, 'lease_expired'],
          [2, 'completed'],
        ],
      );
      assert.ok(runs[1].worker_id.includes(`:${second.child.pid}:`));
    });
  });
}
