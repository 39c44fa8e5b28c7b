import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/** Read and write for the service's user, nothing for anyone else. */
const OWNER_ONLY = 0o600;
/** The group and other permission bits. */
const OTHERS = 0o077;

/**
 * A secret kept in the data dir, created on first use with owner-only permissions. Used for
 * the embedded default's JWT secret and the webhook signing secret when none is configured.
 */
export function ensureSecretFile(dataDir: string, name: string, make: () => string): string {
  const file = path.join(dataDir, 'secrets', name);
  const existing = readSecret(file);
  if (existing !== null) return existing;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // Written whole and flushed under a private temporary name, then published with link(),
  // which fails when the name is taken: nobody ever reads a partial or world-readable secret,
  // and two processes starting together agree on one secret (the loser reads the winner's).
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, 'wx', OWNER_ONLY);
  try {
    fs.writeSync(fd, make() + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return readSecret(file)!;
}

/**
 * The secret in `file`, or null when there is none. A file others may read is tightened to
 * owner-only rather than refused: the service owns it and the fix is certain, while refusing
 * would take the service down. The warning remains, as the secret may already have been read.
 */
function readSecret(file: string): string | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const mode = fs.fstatSync(fd).mode & 0o777;
    if (mode & OTHERS) {
      fs.fchmodSync(fd, OWNER_ONLY);
      process.emitWarning(`${file} was open to others (mode ${mode.toString(8)}); now ${OWNER_ONLY.toString(8)}. Consider replacing the secret.`);
    }
    const value = fs.readFileSync(fd, 'utf8').trim();
    if (!value) throw new Error(`${file} is empty; delete it and a new secret is made at the next start`);
    return value;
  } finally {
    fs.closeSync(fd);
  }
}

export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}
