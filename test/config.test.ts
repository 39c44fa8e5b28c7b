import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CONFIG_VARS, ConfigError, REPO_ROOT, loadConfig } from '../src/config.js';

describe('configuration', () => {
  test('every KILN_* variable is in the README table with its default', () => {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    for (const v of CONFIG_VARS) {
      const shown = v.default === '' ? '(empty)' : `\`${v.default}\``;
      assert.ok(readme.includes(`| \`${v.name}\` | ${shown} |`), `${v.name} missing from the README table`);
    }
  });

  test('defaults when nothing is set', () => {
    const c = loadConfig({});
    assert.equal(c.port, 8000);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.dataDir, path.resolve('./data'));
    assert.equal(c.allowPrivateNetworks, false);
    assert.equal(c.maxAttempts, 3);
    assert.deepEqual(c.gpus, []);
    assert.equal(c.python, path.join(REPO_ROOT, '.venv', 'bin', 'python'));
  });

  test('values are parsed and bad ones named', () => {
    const c = loadConfig({ KILN_PORT: '9000', KILN_GPUS: '0, 1', KILN_ALLOW_PRIVATE_NETWORKS: 'true', KILN_SOURCE_ROOTS: '/a,/b' });
    assert.equal(c.port, 9000);
    assert.deepEqual(c.gpus, ['0', '1']);
    assert.equal(c.allowPrivateNetworks, true);
    assert.deepEqual(c.sourceRoots, ['/a', '/b']);
    assert.throws(
      () => loadConfig({ KILN_PORT: 'eighty' }),
      (e: Error) => e instanceof ConfigError && /KILN_PORT must be an integer/.test(e.message),
    );
    assert.throws(() => loadConfig({ KILN_ALLOW_PRIVATE_NETWORKS: 'maybe' }), /KILN_ALLOW_PRIVATE_NETWORKS must be 0 or 1/);
  });
});
