// Module loader hooks (run off the main thread) registered by record-modules.mjs.
import fs from 'node:fs';

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  fs.appendFileSync(process.env.KILN_RECORD_MODULES, `${result.url}\n`);
  return result;
}
