import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** What one source_images entry names, before anything is fetched. */
export type SourceRef = { kind: 'http'; url: string } | { kind: 'local'; path: string } | { kind: 'data'; mediaType: string; base64: string } | { kind: 'upload'; id: string };

export const UPLOAD_ID = /^[A-Za-z0-9_-]{8,64}$/;
const DATA_URI = /^data:([a-z0-9.+-]+\/[a-z0-9.+-]+)?((?:;[a-z0-9-]+=[^;,]*)*);base64,(.*)$/is;

export class SourceError extends Error {}

/** Parses one entry; throws SourceError with a message fit for a 422 or a rejection reason. */
export function parseSource(entry: string): SourceRef {
  const trimmed = entry.trim();
  if (!trimmed) throw new SourceError('is empty');
  if (trimmed.startsWith('/')) return { kind: 'local', path: trimmed };
  const scheme = trimmed.match(/^([a-z][a-z0-9+.-]*):/i)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'http':
    case 'https': {
      let url: URL;
      try {
        url = new URL(trimmed);
      } catch {
        throw new SourceError('is not a valid URL');
      }
      if (!url.hostname) throw new SourceError('has no host');
      return { kind: 'http', url: url.href };
    }
    case 'file': {
      let file: string;
      try {
        file = fileURLToPath(trimmed);
      } catch {
        throw new SourceError('is not a valid file:// URL (it must name an absolute local path)');
      }
      return { kind: 'local', path: file };
    }
    case 'data': {
      const m = trimmed.match(DATA_URI);
      if (!m) throw new SourceError('is not a base64 data: URI (data:image/png;base64,…)');
      const mediaType = (m[1] ?? '').toLowerCase();
      if (mediaType && !mediaType.startsWith('image/') && mediaType !== 'application/zip') {
        throw new SourceError(`is a data: URI of ${mediaType}; only images and zip archives are accepted`);
      }
      return { kind: 'data', mediaType, base64: m[3] };
    }
    case 'upload': {
      const id = trimmed.slice('upload://'.length);
      if (!trimmed.toLowerCase().startsWith('upload://') || !UPLOAD_ID.test(id)) {
        throw new SourceError('is not a valid upload reference (upload://<id>)');
      }
      return { kind: 'upload', id };
    }
    case undefined:
      throw new SourceError('is neither a URL nor an absolute path');
    default:
      throw new SourceError(`uses ${scheme}:, which is not allowed; use http, https, file, data or upload`);
  }
}

/** The upload id an entry names, or undefined for any other entry, valid or not. */
export function uploadIdOf(entry: string): string | undefined {
  try {
    const ref = parseSource(entry);
    return ref.kind === 'upload' ? ref.id : undefined;
  } catch {
    return undefined;
  }
}

function within(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/** Cheap create-time check: the path, normalised, must lie inside a root (symlinks are judged later). */
export function isLexicallyUnderRoots(file: string, roots: readonly string[]): boolean {
  const resolved = path.resolve(file);
  return roots.some((root) => within(path.resolve(root), resolved));
}

/**
 * Resolves a local source to its real path and insists it lies inside a real source root, so
 * neither `..` nor a symlink can reach outside. Returns the real path of a regular file.
 */
export async function resolveLocalSource(file: string, roots: readonly string[]): Promise<string> {
  if (roots.length === 0) throw new SourceError('local paths are not allowed (KILN_SOURCE_ROOTS is empty)');
  let real: string;
  try {
    real = await realpath(file);
  } catch {
    throw new SourceError('file not found');
  }
  const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => null)));
  if (!realRoots.some((root) => root !== null && within(root, real))) {
    throw new SourceError('resolves outside KILN_SOURCE_ROOTS');
  }
  if (!(await stat(real)).isFile()) throw new SourceError('is not a regular file');
  return real;
}

/** The `.txt` beside a local image, if it exists and is itself inside the roots. */
export async function localCaptionFile(realImage: string, roots: readonly string[]): Promise<string | null> {
  const candidate = path.join(path.dirname(realImage), `${path.parse(realImage).name}.txt`);
  try {
    return await resolveLocalSource(candidate, roots);
  } catch {
    return null;
  }
}
