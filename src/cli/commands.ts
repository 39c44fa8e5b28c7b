import type { ParseArgsConfig } from 'node:util';

export interface Command {
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Resolves to the exit code, or undefined for a long-running command that exits on a signal. */
  run(values: Record<string, unknown>, positionals: string[]): Promise<number | undefined>;
}

/**
 * A command as `kiln --help` lists it. Its module is imported only when the command runs, so
 * `kiln status` (an HTTP client) never loads Fastify, sharp or a database driver.
 */
export interface CommandEntry {
  summary: string;
  load(): Promise<Command>;
}

export const commands: Record<string, CommandEntry> = {
  serve: { summary: 'Run the API (and an in-process worker unless --no-worker)', load: () => import('./serve.js').then((m) => m.serveCommand) },
  worker: {
    summary: 'Run a worker alone (fleet mode): claims stages from the shared database',
    load: () => import('./worker.js').then((m) => m.workerCommand),
  },
  token: {
    summary: 'Mint an API token (HS256 secret from KILN_JWT_SECRET or the data dir)',
    load: () => import('./token.js').then((m) => m.tokenCommand),
  },
  'webhook-secret': {
    summary: 'Print the whsec_ secret that signs webhooks (Standard Webhooks)',
    load: () => import('./webhook-secret.js').then((m) => m.webhookSecretCommand),
  },
  // HTTP clients of a running Kiln (local or remote): --server/KILN_SERVER, --token/KILN_TOKEN.
  train: {
    summary: 'Upload images and start training a LoRA (--wait to follow it and download)',
    load: () => import('./client/train.js').then((m) => m.trainCommand),
  },
  status: { summary: 'Show one training task', load: () => import('./client/status.js').then((m) => m.statusCommand) },
  list: { summary: 'List training tasks', load: () => import('./client/list.js').then((m) => m.listCommand) },
  cancel: { summary: 'Cancel a training task', load: () => import('./client/cancel.js').then((m) => m.cancelCommand) },
  delete: {
    summary: 'Delete a finished task and its files (--with-uploads: its uploads too; --photos: only its photos)',
    load: () => import('./client/delete.js').then((m) => m.deleteCommand),
  },
  erase: {
    summary: 'Erase an entity: its tasks, uploads, and the generations with its LoRAs',
    load: () => import('./client/erase.js').then((m) => m.eraseCommand),
  },
  logs: { summary: "Print a task's trainer log (-f to follow)", load: () => import('./client/logs.js').then((m) => m.logsCommand) },
  artifacts: { summary: 'List or download the artifacts of a task', load: () => import('./client/artifacts.js').then((m) => m.artifactsCommand) },
  generate: { summary: 'Generate images with trained LoRAs and download them', load: () => import('./client/generate.js').then((m) => m.generateCommand) },
  generations: { summary: 'List generations (--lora: those with one task’s LoRA)', load: () => import('./client/generations.js').then((m) => m.generationsCommand) },
  usage: { summary: 'Slot time by tenant, job and slot kind (this month by default)', load: () => import('./client/usage.js').then((m) => m.usageCommand) },
};
