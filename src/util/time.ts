/** UTC ISO-8601 with milliseconds and `Z`: the one timestamp format of the store and the API. */
export function isoNow(now = Date.now()): string {
  return new Date(now).toISOString();
}

export function isoIn(ms: number, now = Date.now()): string {
  return new Date(now + ms).toISOString();
}
