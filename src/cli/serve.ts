import { loadConfig } from '../config.js';
import { startServer } from '../server.js';
import type { Command } from './commands.js';
import fs from 'node:fs';

/** NVIDIA's driver exposes this device node wherever CUDA can run. */
function hasCudaDevice(): boolean {
  return fs.existsSync('/dev/nvidiactl');
}

export const serveCommand: Command = {
  usage: `Usage: kiln serve [--no-worker]

  --no-worker   serve the API only (fleet mode: run "kiln worker" elsewhere)

Configuration comes from KILN_* environment variables; see the README.`,
  options: { 'no-worker': { type: 'boolean', default: false } },
  async run(values) {
    const config = loadConfig();
    const server = await startServer(config, { worker: !values['no-worker'] });
    const { runtime } = server;
    if (runtime.verifier.generated && runtime.verifier.mint && config.devPrintToken) {
      const token = await runtime.verifier.mint({ tenantId: 'local', admin: true, ttlSeconds: 24 * 3600, subject: 'kiln-dev' });
      console.log(`\nKiln is serving at ${server.url} (docs: ${server.url}/docs, data: ${config.dataDir})`);
      console.log('A JWT secret was generated in the data dir. A token for tenant "local" with admin scope, valid 24 h:\n');
      console.log(`  export KILN_TOKEN=${token}\n`);
      // The fragment never reaches the server; the page moves it to this tab's session storage.
      console.log(`The dashboard, signed in with that token:\n\n  ${server.url}/#token=${token}\n`);
      console.log('Mint more with: ./kiln token --tenant <name> [--admin] [--ttl 1h]\n');
    }
    if (!values['no-worker'] && config.gpus.length === 0 && !hasCudaDevice()) {
      console.log(
        [
          'No CUDA GPU here, so the worker trains on the CPU.',
          `  ${config.defaultBaseModel} (the default base model) needs a GPU and its weights in the Hugging Face cache;`,
          '  on this machine use the built-in tiny FLUX model instead: "base_model_path": "builtin:tiny-flux",',
          '  or ./kiln train <photos> --trigger TOK --base builtin:tiny-flux --wait (see the README demo).',
          '',
        ].join('\n'),
      );
    }
    const shutdown = (signal: string) => {
      server.app.log.info({ signal }, 'shutting down');
      server.stop().then(
        () => process.exit(0),
        (err) => {
          console.error(err);
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
    return undefined;
  },
};
