import { randomBytes, randomInt } from 'node:crypto';

let lastMs = 0;
let counter = 0;

/**
 * UUIDv7 (RFC 9562): time-ordered, so new rows land at the end of the primary key index and
 * `ORDER BY created_at, id` follows creation order. Within one millisecond the 12 `rand_a`
 * bits are a counter (the RFC's method 1), so ids made in the same millisecond by this
 * process still sort in the order they were made.
 */
export function uuidv7(now = Date.now()): string {
  let ms = now;
  let seq: number;
  if (now > lastMs) {
    lastMs = now;
    // Start in the lower half so a burst rarely overflows into the next millisecond.
    counter = seq = randomInt(0, 0x800);
  } else if (now === lastMs || now > lastMs - 1000) {
    // Same millisecond, or the clock stepped back a little: keep counting from the last id.
    counter += 1;
    if (counter > 0xfff) {
      lastMs += 1;
      counter = 0;
    }
    ms = lastMs;
    seq = counter;
  } else {
    // A time well in the past, asked for explicitly: ordered by that time, random within it.
    seq = randomInt(0, 0x1000);
  }
  const bytes = randomBytes(16);
  bytes.writeUIntBE(ms, 0, 6);
  bytes[6] = 0x70 | (seq >> 8);
  bytes[7] = seq & 0xff;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
