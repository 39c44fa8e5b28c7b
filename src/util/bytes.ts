const UNITS = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/**
 * A size as a person reads it, with the exact count beside it so nothing is lost to rounding:
 * `1048576` → "1 MiB (1048576 bytes)", `1500` → "1.5 KiB (1500 bytes)", `512` → "512 bytes".
 */
export function describeBytes(bytes: number): string {
  let unit = 0;
  let value = bytes;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${bytes} bytes`;
  const shown = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, '');
  return `${shown} ${UNITS[unit]} (${bytes} bytes)`;
}
