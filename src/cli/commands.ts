import type { ParseArgsConfig } from 'node:util';
import { serveCommand } from './serve.js';
import { tokenCommand } from './token.js';
import { workerCommand } from './worker.js';
import { webhookSecretCommand } from './webhook-secret.js';
import { artifactsCommand } from './client/artifacts.js';
import { cancelCommand } from './client/cancel.js';
import { generateCommand } from './client/generate.js';
import { listCommand } from './client/list.js';
import { logsCommand } from './client/logs.js';
import { statusCommand } from './client/status.js';
import { trainCommand } from './client/train.js';

export interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Resolves to the exit code, or undefined for a long-running command that exits on a signal. */
  run(values: Record<string, unknown>, positionals: string[]): Promise<number | undefined>;
}

export const commands: Record<string, Command> = {
  serve: serveCommand,
  worker: workerCommand,
  token: tokenCommand,
  'webhook-secret': webhookSecretCommand,
  // HTTP clients of a running Kiln (local or remote): --server/KILN_SERVER, --token/KILN_TOKEN.
  train: trainCommand,
  status: statusCommand,
  list: listCommand,
  cancel: cancelCommand,
  logs: logsCommand,
  artifacts: artifactsCommand,
  generate: generateCommand,
};
