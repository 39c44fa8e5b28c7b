import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { commands } from '../../src/cli/commands.js';
import { REPO_ROOT } from '../../src/config.js';
import { tmpDir } from '../helpers/harness.js';

/** What an HTTP client command must not pull in: the server, image and database stacks. */
const HEAVY = ['fastify', 'sharp', 'pg', 'better-sqlite3', 'kysely'];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** URLs of every module the process loaded. */
  modules: string[];
}

/** Runs the CLI from source, as helpers.ts does, recording the modules it loads. */
function runRecorded(args: string[]): Promise<Run> {
  const record = path.join(tmpDir('kiln-cli-lazy-'), 'modules.txt');
  const hook = path.join(REPO_ROOT, 'test/cli/record-modules.mjs');
  // Nothing listens on port 1: a client command fails at once with ECONNREFUSED.
  const env = { ...process.env, KILN_RECORD_MODULES: record, KILN_SERVER: 'http://127.0.0.1:1', KILN_TOKEN: '' };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--import', hook, path.join(REPO_ROOT, 'src/cli/main.ts'), ...args],
      { cwd: REPO_ROOT, env, timeout: 30_000 },
      (err, stdout, stderr) => {
        const modules = fs.existsSync(record) ? fs.readFileSync(record, 'utf8').split('\n').filter(Boolean) : [];
        fs.rmSync(path.dirname(record), { recursive: true, force: true });
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr, modules });
      },
    );
  });
}

function loadedPackages(modules: string[]): string[] {
  return HEAVY.filter((pkg) => modules.some((url) => url.includes(`/node_modules/${pkg}/`)));
}

describe('kiln loads a command’s modules only when it runs', { timeout: 90_000 }, () => {
  test('kiln --help lists every command with its summary and imports none of them', async () => {
    const res = await runRecorded(['--help']);
    assert.equal(res.code, 0, res.stderr);
    for (const [name, { summary }] of Object.entries(commands)) {
      assert.match(res.stdout, new RegExp(`^  ${name}\\s+${summary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    }
    const commandModules = res.modules.filter((url) => /\/src\/cli\/(client\/|serve\.ts|worker\.ts|token\.ts|webhook-secret\.ts)/.test(url));
    assert.deepEqual(commandModules, []);
    assert.deepEqual(loadedPackages(res.modules), []);
  });

  test('kiln status --help loads the status client, not the server stack', async () => {
    const res = await runRecorded(['status', '--help']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /Usage: kiln status/);
    assert.ok(
      res.modules.some((url) => url.endsWith('/src/cli/client/status.ts')),
      'the recorder saw the command module',
    );
    assert.deepEqual(loadedPackages(res.modules), []);
  });

  test('kiln status <id> against no server fails to connect without loading the server stack', async () => {
    const res = await runRecorded(['status', '00000000-0000-0000-0000-000000000000']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /cannot reach Kiln at http:\/\/127\.0\.0\.1:1/);
    assert.deepEqual(loadedPackages(res.modules), []);
  });

  test('the recorder does see them where they belong: kiln serve --help loads Fastify', async () => {
    const res = await runRecorded(['serve', '--help']);
    assert.equal(res.code, 0, res.stderr);
    assert.ok(loadedPackages(res.modules).includes('fastify'), 'serve imports the server');
  });
});
