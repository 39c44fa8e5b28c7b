import { after, before, describe, test } from 'node:test';
import { startFleet, type Fleet } from '../helpers/fleet.js';
import { mintToken } from '../helpers/processes.js';
import { cancelDuringTraining, trainToCompletion, trainerKilledFromOutside, type Target } from './scenario.js';

// The same end-to-end scenario in fleet mode: Postgres holds the tasks, the API and a worker
// are separate processes that share only the database and the data dir.
describe('end to end, fleet (Postgres, API and worker processes)', { timeout: 600_000 }, () => {
  let fleet: Fleet;
  let target: Target;
  before(async () => {
    fleet = await startFleet({ workers: 1, env: { KILN_LEASE_SECONDS: '10' } });
    target = { baseUrl: fleet.baseUrl, token: await mintToken('fleet-e2e'), dataDir: fleet.dataDir };
  });
  after(() => fleet.stop());

  test('train, watch, download, load in diffusers, generate', () => trainToCompletion(target));
  test('cancel during training stops the trainer within 10 s', () => cancelDuringTraining(target));
  test('a trainer killed from outside fails the task clearly', () => trainerKilledFromOutside(target));
});
