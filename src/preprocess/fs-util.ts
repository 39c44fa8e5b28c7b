import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, readdir, rename, rm, writeFile } from 'node:fs/promises';

/** Write-then-rename, so a crash never leaves a half-written file under the real name. */
export async function writeFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

/**
 * A second name for a file's bytes: a hard link, free and instant within the data dir's
 * filesystem, or a copy where links are refused (another filesystem, some network mounts).
 * Either way the new name outlives the deletion of the old one.
 */
export async function linkOrCopy(from: string, to: string): Promise<void> {
  await rm(to, { force: true });
  try {
    await link(from, to);
  } catch (err) {
    if (!['EXDEV', 'EPERM', 'ENOTSUP', 'EMLINK'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    await copyFile(from, to);
  }
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Runs `fn` over `items` with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index], index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** A short, credential-free rendering of a source for messages (data URIs can be megabytes). */
export function displaySource(source: string, zipEntry?: string | null): string {
  let text = source;
  if (/^data:/i.test(text)) text = `${text.slice(0, 40)}…`;
  else {
    try {
      const url = new URL(text);
      if (url.username || url.password) {
        url.username = '';
        url.password = '';
        text = url.href;
      }
    } catch {
      // a plain path
    }
    if (text.length > 200) text = `${text.slice(0, 200)}…`;
  }
  return zipEntry ? `${text} (zip entry ${zipEntry})` : text;
}

/** The names in a folder; none for a folder that does not exist. */
export async function entriesOf(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
