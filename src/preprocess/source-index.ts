import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { sha256File, writeFileAtomic } from './fs-util.js';

interface Entry {
  file: string; // relative to sources/
  sha256: string;
  bytes: number;
  /** The name an upload was sent under. */
  filename?: string;
}

/**
 * sources/index.json: which source string was already fetched to which file. A rescued task
 * reuses a file only if its bytes still hash to the recorded value.
 */
export class SourceIndex {
  private writes: Promise<void> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    private readonly entries: Record<string, Entry>,
  ) {}

  static async load(sourcesDir: string): Promise<SourceIndex> {
    try {
      const parsed = JSON.parse(await readFile(path.join(sourcesDir, 'index.json'), 'utf8')) as Record<string, Entry>;
      return new SourceIndex(sourcesDir, parsed && typeof parsed === 'object' ? parsed : {});
    } catch {
      return new SourceIndex(sourcesDir, {});
    }
  }

  /** The absolute path of an intact earlier download of `source`, or null. */
  async reusable(source: string): Promise<{ file: string; sha256: string; bytes: number; filename?: string } | null> {
    const entry = this.entries[source];
    if (!entry || entry.file.includes('/') || entry.file.includes('..')) return null;
    const file = path.join(this.dir, entry.file);
    try {
      await access(file);
      return (await sha256File(file)) === entry.sha256 ? { ...entry, file } : null;
    } catch {
      return null;
    }
  }

  /** Records a finished download; writes are serialised so concurrent downloads don't lose entries. */
  record(source: string, absFile: string, sha256: string, bytes: number, filename?: string): Promise<void> {
    this.entries[source] = { file: path.basename(absFile), sha256, bytes, ...(filename === undefined ? {} : { filename }) };
    const snapshot = JSON.stringify(this.entries, null, 2);
    this.writes = this.writes.then(() => writeFileAtomic(path.join(this.dir, 'index.json'), snapshot));
    return this.writes;
  }
}
