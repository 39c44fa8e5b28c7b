import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { scopeOf } from '../../auth/principal.js';
import { Usage, UsageQuery } from '../../domain/schemas/usage.js';
import { monthStart, usageOf } from '../../domain/usage.js';
import { runsOverlapping } from '../../store/usage.js';
import type { ApiDeps } from '../deps.js';
import { RequestValidationError } from '../errors.js';
import { errorResponses } from '../responses.js';
import { allowanceOf } from '../quota.js';

/** Slot time per tenant, for billing a platform's customers or watching what each one costs (decision 0013). */
export const usageRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, deps) => {
  app.get(
    '/',
    {
      schema: {
        operationId: 'get_usage',
        summary: 'Get Usage',
        description:
          'Seconds each tenant’s jobs held a GPU, CPU or preprocessing slot in [since, until), by job kind, with the number of runs. A run crossing an edge of the period counts only its part inside; a run still going counts up to now; the runs of deleted tasks and generations still count. A tenant sees its own usage, an admin every tenant’s.',
        tags: ['Usage'],
        querystring: UsageQuery,
        response: { 200: Usage, ...errorResponses({ query: true }) },
      },
    },
    async (request) => {
      const now = Date.now();
      const { since = new Date(monthStart(now)).toISOString(), until = new Date(now).toISOString() } = request.query;
      const [from, to] = [instant('since', since), instant('until', until)];
      if (to <= from) throw issue(request.query.until === undefined ? 'since' : 'until', `the period is empty: until (${until}) must be later than since (${since})`);
      const [fromIso, toIso] = [new Date(from).toISOString(), new Date(to).toISOString()];
      const runs = await runsOverlapping(deps.store, scopeOf(request.principal), fromIso, toIso);
      return { since: fromIso, until: toIso, usage: usageOf(runs, from, to, now), allowance: await allowanceOf(deps, request.principal, now) };
    },
  );
};

const issue = (field: string, msg: string) => new RequestValidationError([{ loc: ['query', field], msg, type: 'value_error' }]);

/** An RFC 3339 time as milliseconds; one the schema passes but Date cannot hold (a leap second, year 0) is a 422 too. */
function instant(field: string, value: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms) || Number.isNaN(new Date(ms).getTime())) throw issue(field, `${value} is not a time Kiln can use`);
  return ms;
}
