import { Type, type Static } from '@sinclair/typebox';
import { JOB_KINDS } from './usage.js';
import { Nullable, StringEnum } from './types.js';

/** Where a waiting job stands in the queue of the stage it waits for. */
export const QueuePlace = Type.Object(
  {
    status: Type.String(),
    waiting_for: Nullable(StringEnum(JOB_KINDS), {
      description: 'The stage the job waits to start (preprocess, train or generate); null once it is running or finished',
    }),
    position: Nullable(Type.Integer({ minimum: 0 }), {
      description:
        'Jobs that start before this one as the queue stands now: 0 means it takes the next free slot. A training task waits behind the generations waiting for the same slots, and behind higher-priority or older tasks; jobs of tenants at their running cap are left out, as the workers pass over them too. Null when not waiting.',
    }),
    tenant_running: Nullable(Type.Integer({ minimum: 0 }), {
      description: "Stages the task's tenant runs now; at tenant_cap, its waiting tasks start only when one of them ends. Null for a generation or when not waiting.",
    }),
    tenant_cap: Nullable(Type.Integer({ minimum: 1 }), { description: 'KILN_MAX_RUNNING_PER_TENANT; null when there is no cap, for a generation, or when not waiting' }),
    estimated_training_seconds: Nullable(Type.Integer({ minimum: 0 }), {
      description:
        "A waiting task's training time once it starts, from the latest runs of its base model: a fixed cost plus a cost per step, fitted to them. Rough (resolution, batch size, rank and the slot move it); null without such runs, for a generation, or when not waiting.",
    }),
    held_by_tenant_cap: Type.Boolean({ description: 'The tenant runs tenant_cap stages already: this one starts only when one of them ends, whatever its position' }),
  },
  { title: 'QueuePlace' },
);
export type QueuePlace = Static<typeof QueuePlace>;
