import { after, before, describe, test } from 'node:test';
import { startServer, type Server } from '../../src/server.js';
import { testConfig } from '../../src/config.js';
import { tmpDir } from '../helpers/harness.js';
import { cancelDuringTraining, nonFiniteTrainingFails, trainToCompletion, trainerKilledFromOutside, type Target } from './scenario.js';

// The embedded default end to end: one process, SQLite, the in-process worker, the real
// preprocessing and the real trainer on the tiny model, driven only through HTTP.
describe('end to end, embedded (SQLite, one process)', { timeout: 600_000 }, () => {
  let server: Server;
  let target: Target;
  before(async () => {
    const dataDir = tmpDir('kiln-e2e-');
    server = await startServer({ ...testConfig(dataDir), port: 0, host: '127.0.0.1', logLevel: 'warn', leaseSeconds: 10 });
    const token = await server.runtime.verifier.mint!({ tenantId: 'e2e' });
    target = { baseUrl: server.url, token, dataDir };
  });
  after(() => server.stop());

  test('train, watch, download, load in diffusers, generate', () => trainToCompletion(target));
  test('cancel during training stops the trainer within 10 s', () => cancelDuringTraining(target));
  test('a trainer killed from outside fails the task clearly', () => trainerKilledFromOutside(target));
  test('a run whose gradients go non-finite is FAILED, never COMPLETED', () => nonFiniteTrainingFails(target));
});
