import type { QueuePlace } from '../../src/domain/schemas/queue';
import { duration, plural } from '../../src/util/words';

export { duration };

/** Where a waiting task stands, in words; empty once it runs. */
export function queueText(place: QueuePlace | null): string {
  if (!place || place.position === null) return '';
  const ahead = place.position === 0 ? 'next to start' : `${plural(place.position, 'job')} ahead in the queue`;
  const held = place.held_by_tenant_cap ? `${ahead}, once one of your ${place.tenant_running} running stages ends` : ahead;
  return place.estimated_training_seconds === null ? held : `${held}; about ${duration(place.estimated_training_seconds)} of training`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '–';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export const TERMINAL = ['COMPLETED', 'FAILED', 'CANCELLED'];
export const PRIORITIES = ['LOW', 'NORMAL', 'HIGH', 'URGENT'];
