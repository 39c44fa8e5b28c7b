import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';

const TRASH = '.trash';

/**
 * Removes a folder of the data dir (a deleted task's or generation's). It is first renamed
 * into KILN_DATA_DIR/.trash/, one atomic step, so a download in flight and a later listing see
 * the whole folder or nothing; the removal itself can take a while for a full fine-tune. A
 * process that dies mid-removal leaves the rest in .trash, which `emptyTrash` clears at the
 * next start. A folder that never existed is not an error.
 */
export async function discardFolder(dataDir: string, folder: string): Promise<void> {
  const root = path.resolve(dataDir);
  const target = path.resolve(folder);
  const inside = path.relative(root, target);
  if (inside === '' || inside.startsWith('..') || path.isAbsolute(inside)) throw new Error(`refusing to delete ${folder}: it is not inside the data dir ${root}`);
  const trash = path.join(root, TRASH);
  await mkdir(trash, { recursive: true });
  const parked = path.join(trash, `${path.basename(target)}-${randomBytes(4).toString('hex')}`);
  try {
    await rename(target, parked);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    // tasks/ mounted from another filesystem than the data dir: remove it where it is.
    if (code === 'EXDEV') return rm(target, { recursive: true, force: true });
    throw err;
  }
  await rm(parked, { recursive: true, force: true });
}

/** Finishes removals that a stopped process left in .trash; resolves to how many it cleared. */
export async function emptyTrash(dataDir: string): Promise<number> {
  const trash = path.join(path.resolve(dataDir), TRASH);
  let names: string[];
  try {
    names = await readdir(trash);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  await Promise.all(names.map((name) => rm(path.join(trash, name), { recursive: true, force: true })));
  return names.length;
}
