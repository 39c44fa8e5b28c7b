import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * A secret kept in the data dir, created on first use with owner-only permissions. Used for
 * the embedded default's JWT secret and the webhook signing secret when none is configured.
 */
export function ensureSecretFile(dataDir: string, name: string, make: () => string): string {
  const file = path.join(dataDir, 'secrets', name);
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const value = make();
  try {
    // 'wx' so two processes starting together agree on one secret: the loser reads the winner's.
    fs.writeFileSync(file, value + '\n', { mode: 0o600, flag: 'wx' });
    return value;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return fs.readFileSync(file, 'utf8').trim();
    throw err;
  }
}

export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}
