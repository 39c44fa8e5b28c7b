/** A count and its noun, the noun in the plural unless the count is one: "1 task", "3 uploads". */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
