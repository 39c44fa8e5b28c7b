// Preload for lazy.test.ts: `node --import tsx --import ./record-modules.mjs …` appends the URL of
// every module the process loads to the file named by KILN_RECORD_MODULES, one per line.
// ESM imports (and CJS modules imported from ESM) pass the loader hook; CommonJS modules that
// those require() are in require.cache, written out when the process exits.
import fs from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

const out = process.env.KILN_RECORD_MODULES;
if (out) {
  register('./record-modules-hooks.mjs', import.meta.url);
  const require = createRequire(import.meta.url);
  process.on('exit', () => {
    const lines = Object.keys(require.cache).map((file) => `${pathToFileURL(file).href}\n`);
    fs.appendFileSync(out, lines.join(''));
  });
}
