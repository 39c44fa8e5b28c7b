import fs from 'node:fs';

const MIB = 1024 * 1024;

/** The disk of a folder with less free space than Kiln keeps. */
export interface DiskShortage {
  freeBytes: number;
  minFreeBytes: number;
}

/**
 * The shortage when the disk holding `dir` has less than `minFreeMb` MiB that this process may
 * write; null when it has that much, when no minimum is set (0), or when the disk cannot be read
 * (a missing folder is the caller's error to meet, not a reason to stop all work).
 */
export function diskShortage(dir: string, minFreeMb: number): DiskShortage | null {
  if (minFreeMb <= 0) return null;
  let freeBytes: number;
  try {
    const stats = fs.statfsSync(dir);
    freeBytes = stats.bavail * stats.bsize;
  } catch {
    return null;
  }
  const minFreeBytes = minFreeMb * MIB;
  return freeBytes < minFreeBytes ? { freeBytes, minFreeBytes } : null;
}

export function describeShortage(shortage: DiskShortage): string {
  const mib = (bytes: number) => Math.floor(bytes / MIB);
  return `the data dir's disk has ${mib(shortage.freeBytes)} MiB free, under the ${mib(shortage.minFreeBytes)} MiB it keeps (KILN_MIN_FREE_DISK_MB)`;
}

/** A write that failed because the disk, or the user's quota on it, is full. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
