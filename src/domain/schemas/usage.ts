import { Type, type Static } from '@sinclair/typebox';
import { Nullable, StringEnum } from './types.js';

/** The engine's job kinds: JobKind.name is one of these, and usage reports each. */
export const JOB_KINDS = ['preprocess', 'train', 'generate'] as const;
export const SLOT_KINDS = ['gpu', 'cpu', 'preprocess', 'unknown'] as const;

export const UsageQuery = Type.Object({
  since: Type.Optional(Type.String({ format: 'date-time', description: 'Start of the period, inclusive. Default: the first of this month, 00:00 UTC' })),
  until: Type.Optional(Type.String({ format: 'date-time', description: 'End of the period, exclusive. Default: now' })),
});
export type UsageQuery = Static<typeof UsageQuery>;

export const UsageLine = Type.Object(
  {
    tenant_id: Nullable(Type.String()),
    job: StringEnum(JOB_KINDS),
    slot: StringEnum(SLOT_KINDS, { description: 'What the runs held: a GPU, a CPU training slot, a preprocessing slot (unknown: runs recorded before Kiln kept it)' }),
    runs: Type.Integer({ description: 'Runs that held a slot during the period, attempts and retries each counted' }),
    seconds: Type.Number({ description: 'Their time on the slot within the period' }),
  },
  { title: 'UsageLine' },
);
export type UsageLine = Static<typeof UsageLine>;

export const Usage = Type.Object(
  {
    since: Type.String({ format: 'date-time' }),
    until: Type.String({ format: 'date-time' }),
    usage: Type.Array(UsageLine, { description: 'One line per tenant, job kind and slot kind that ran in the period' }),
    allowance: Nullable(
      Type.Object({
        hours: Type.Number({ description: "The caller's tenant's training hours per month (kiln_monthly_training_hours, or KILN_TENANT_MONTHLY_TRAINING_HOURS)" }),
        used_hours: Type.Number({ description: 'Training and generation slot hours used this month so far, whatever period was asked for' }),
        renews_at: Type.String({ format: 'date-time' }),
      }),
      { description: "Null for an admin, or when the caller's tenant has no monthly allowance" },
    ),
  },
  { title: 'Usage' },
);
export type Usage = Static<typeof Usage>;
