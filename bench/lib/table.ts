/** Plain-text tables for bench output, one column per key of the first row. */

type Cell = string | number | boolean | null | undefined;

function text(value: Cell): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) < 10 ? 3 : 1);
  return String(value);
}

export function formatTable<T extends object>(rows: T[], columns?: (keyof T & string)[]): string {
  if (rows.length === 0) return '(no rows)';
  const cols = columns ?? (Object.keys(rows[0]) as (keyof T & string)[]);
  const cells = rows.map((row) => cols.map((c) => text(row[c] as Cell)));
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  // Numbers right-aligned so magnitudes line up; text left-aligned.
  const numeric = cols.map((c) => rows.every((r) => typeof r[c] === 'number' || r[c] === null || r[c] === undefined));
  const line = (values: string[]) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(cols), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

export function printTable<T extends object>(title: string, rows: T[], columns?: (keyof T & string)[]): void {
  console.log(`\n${title}\n${formatTable(rows, columns)}`);
}
