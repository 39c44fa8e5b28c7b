/** Who is calling, as the token says. `tenantId` null is the tenant-less default space. */
export interface Principal {
  subject: string;
  tenantId: string | null;
  admin: boolean;
  /** The token's `kiln_monthly_training_hours`: the tenant's training allowance this month, when its platform sets one. */
  monthlyTrainingHours?: number;
}

export const ADMIN_SCOPE = 'training:admin';

/** What a principal may see of the task table: its own tenant, or everything for an admin. */
export interface TenantScope {
  tenantId: string | null;
  all: boolean;
}

export function scopeOf(p: Principal): TenantScope {
  return { tenantId: p.tenantId, all: p.admin };
}
