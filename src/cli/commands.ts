import type { ParseArgsConfig } from 'node:util';
import { serveCommand } from './serve.js';
import { tokenCommand } from './token.js';
import { workerCommand } from './worker.js';
import { webhookSecretCommand } from './webhook-secret.js';

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
};
