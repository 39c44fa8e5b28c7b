import { loadConfig } from '../config.js';
import { webhookSecret } from '../webhooks/signing.js';
import type { Command } from './commands.js';

export const webhookSecretCommand: Command = {
  usage: 'Usage: kiln webhook-secret\n\nPrints KILN_WEBHOOK_SECRET, or the one created in the data dir.',
  options: {},
  async run() {
    console.log(webhookSecret(loadConfig()));
    return 0;
  },
};
