import { createVerifier, parseTtl } from '../auth/jwt.js';
import { loadConfig } from '../config.js';
import type { Command } from './commands.js';

export const tokenCommand: Command = {
  usage: `Usage: kiln token [--tenant T] [--admin] [--ttl 1h] [--monthly-hours N]

  --tenant T          tenant_id claim (tasks are scoped to it)
  --admin             add the training:admin scope (sees every tenant, sets priority)
  --ttl D             lifetime: seconds, or 30m, 1h, 7d (default 1h)
  --monthly-hours N   kiln_monthly_training_hours claim: the tenant's GPU or CPU slot hours
                      per month, past which its new tasks and generations are refused`,
  options: {
    tenant: { type: 'string' },
    admin: { type: 'boolean', default: false },
    ttl: { type: 'string', default: '1h' },
    'monthly-hours': { type: 'string' },
  },
  async run(values) {
    const verifier = createVerifier(loadConfig());
    if (!verifier.mint) {
      console.error('kiln token: tokens are verified with a public key or JWKS here; mint them with your identity provider.');
      return 2;
    }
    const hours = values['monthly-hours'] === undefined ? undefined : Number(values['monthly-hours']);
    if (hours !== undefined && !(Number.isFinite(hours) && hours >= 0)) {
      console.error(`kiln token: --monthly-hours wants a number of hours >= 0, got "${String(values['monthly-hours'])}"`);
      return 2;
    }
    const token = await verifier.mint({
      tenantId: (values.tenant as string | undefined) ?? null,
      admin: Boolean(values.admin),
      ttlSeconds: parseTtl(String(values.ttl)),
      monthlyTrainingHours: hours,
    });
    console.log(token);
    return 0;
  },
};
