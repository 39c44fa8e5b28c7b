// `make test-fuzz`: schemathesis against the OpenAPI document of a real Kiln server (SQLite in a
// temp data dir, API only, a known JWT secret), authenticated with a minted admin token. The
// checks and the budget are in schemathesis.toml beside this file. Exits non-zero on any failure.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../../src/config.js';
import { freePort } from '../helpers/free-port.js';
import { tmpDir } from '../helpers/harness.js';
import { mintToken, startKiln, waitForHttp } from '../helpers/processes.js';

const SCHEMATHESIS = path.join(REPO_ROOT, '.venv/bin/st');
const CONFIG = path.join(REPO_ROOT, 'test/fuzz/schemathesis.toml');
/** Far above a normal run (about a minute); only a hung run reaches it. */
const DEADLINE_MS = 5 * 60_000;

function runSchemathesis(args: string[], cwd: string): Promise<number> {
  const child = spawn(SCHEMATHESIS, args, { cwd, stdio: 'inherit' });
  const deadline = setTimeout(() => child.kill('SIGTERM'), DEADLINE_MS);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(deadline);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

async function main(): Promise<number> {
  if (!fs.existsSync(SCHEMATHESIS)) {
    console.error(`${SCHEMATHESIS} is missing: run make setup (test/fuzz/requirements.txt)`);
    return 1;
  }
  const dataDir = tmpDir('kiln-fuzz-');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const logFile = path.join(dataDir, 'server.log');
  const server = startKiln(['serve', '--no-worker'], { KILN_DATA_DIR: dataDir, KILN_PORT: String(port), KILN_HOST: '127.0.0.1', KILN_LOG_LEVEL: 'warn' }, logFile);
  const started = Date.now();
  let code = 1;
  try {
    await waitForHttp(`${base}/readyz`);
    const token = await mintToken('fuzz', true);
    // Run from the data dir: hypothesis leaves its working files wherever it runs.
    code = await runSchemathesis(['--config-file', CONFIG, '--no-color', 'run', `${base}/openapi.json`, '--header', `Authorization: Bearer ${token}`], dataDir);
  } finally {
    await server.stop();
    if (code !== 0) console.error(`--- server log (${logFile}) ---\n${fs.readFileSync(logFile, 'utf8').slice(-20_000)}`);
    else fs.rmSync(dataDir, { recursive: true, force: true });
  }
  console.log(`fuzz run: ${code === 0 ? 'passed' : `failed (schemathesis exit ${code})`} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return code;
}

process.exit(await main());
