import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { testConfig } from '../../src/config.js';
import { ensureSecretFile } from '../../src/auth/secrets.js';
import { startServer } from '../../src/server.js';
import { tmpDir } from '../helpers/harness.js';

const run = promisify(execFile);
const modeOf = (file: string) => fs.statSync(file).mode & 0o777;

describe('secret files in the data dir', () => {
  test('a service started on a fresh data dir writes its JWT, webhook and link-signing secrets owner-only', async () => {
    const dataDir = tmpDir();
    // No configured secrets: all are made in the data dir, as `make run` does.
    const config = testConfig(dataDir, { port: 0, host: '127.0.0.1', logLevel: 'silent', webhookSecret: '', jwt: { ...testConfig(dataDir).jwt, secret: '' } });
    const server = await startServer(config, { worker: false });
    await server.stop();
    const dir = path.join(dataDir, 'secrets');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['jwt-secret', 'url-signing-secret', 'webhook-secret']);
    assert.equal(modeOf(dir), 0o700);
    for (const name of ['jwt-secret', 'url-signing-secret', 'webhook-secret']) {
      assert.equal(modeOf(path.join(dir, name)), 0o600, name);
      assert.ok(fs.readFileSync(path.join(dir, name), 'utf8').trim().length >= 32, name);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('a secret file others can read is tightened to owner-only and keeps its value', async () => {
    const dataDir = tmpDir();
    const file = path.join(dataDir, 'secrets', 'jwt-secret');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, 'an-old-secret\n', { mode: 0o644 });
    fs.chmodSync(file, 0o644); // whatever the umask
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      assert.equal(
        ensureSecretFile(dataDir, 'jwt-secret', () => 'never-made'),
        'an-old-secret',
      );
      await new Promise((r) => setImmediate(r)); // a warning is emitted on the next tick
    } finally {
      process.off('warning', onWarning);
    }
    assert.equal(modeOf(file), 0o600);
    assert.match(warnings.join('\n'), /jwt-secret was open to others \(mode 644\)/);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('processes starting together agree on one whole secret and leave no temporary file', async () => {
    const dataDir = tmpDir();
    const module = path.resolve('src/auth/secrets.ts');
    const script = `import { ensureSecretFile, randomSecret } from ${JSON.stringify(module)}; process.stdout.write(ensureSecretFile(${JSON.stringify(dataDir)}, 'shared', randomSecret));`;
    const outputs = await Promise.all(Array.from({ length: 4 }, () => run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script])));
    const secrets = new Set(outputs.map((o) => o.stdout));
    assert.equal(secrets.size, 1);
    assert.equal([...secrets][0], fs.readFileSync(path.join(dataDir, 'secrets', 'shared'), 'utf8').trim());
    assert.ok([...secrets][0].length >= 32);
    assert.deepEqual(fs.readdirSync(path.join(dataDir, 'secrets')), ['shared']);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
});
