import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export type ArtifactKind = 'weights' | 'checkpoint' | 'sample' | 'manifest' | 'dataset' | 'log' | 'image';

export interface Artifact {
  path: string;
  kind: ArtifactKind;
  size: number;
  sha256: string;
}

/** Which parts of a task folder are artifacts; anything else (sources, caches) is not served. */
const AREAS: { dir: string; kind: ArtifactKind; match?: RegExp }[] = [
  { dir: 'output', kind: 'weights' },
  { dir: 'checkpoints', kind: 'checkpoint' },
  { dir: 'samples', kind: 'sample', match: /\.(png|jpe?g|webp)$/i },
  { dir: 'dataset', kind: 'manifest', match: /^manifest\.json$/ },
  // The prepared images the model trains on, as the dashboard's manifest shows them.
  { dir: 'dataset', kind: 'dataset', match: /\.(png|jpe?g|webp)$/i },
  { dir: 'logs', kind: 'log', match: /\.log$/ },
  { dir: 'images', kind: 'image', match: /\.(png|jpe?g|webp)$/i },
];

const CONTENT_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.json': 'application/json',
  '.log': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};

export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** Hashes are cached by path, size and mtime: a weights file is hashed once, not per listing. */
const hashCache = new Map<string, { key: string; sha256: string }>();

async function sha256Of(file: string, stat: fs.Stats): Promise<string> {
  const key = `${stat.size}:${stat.mtimeMs}`;
  const hit = hashCache.get(file);
  if (hit?.key === key) return hit.sha256;
  const hash = createHash('sha256');
  // Without an encoding, a file stream yields Buffers.
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  const sha256 = hash.digest('hex');
  hashCache.set(file, { key, sha256 });
  return sha256;
}

function walk(dir: string): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return walk(full);
    return e.isFile() && !e.name.startsWith('.') && !e.name.includes('.tmp') ? [full] : [];
  });
}

function kindOf(relative: string): ArtifactKind | null {
  const [top, ...rest] = relative.split('/');
  if (rest.length === 0) return null;
  const name = rest[rest.length - 1];
  return AREAS.find((a) => a.dir === top && (!a.match || a.match.test(name)))?.kind ?? null;
}

/** Every artifact of a task folder, paths relative to it, sorted. */
export async function listArtifacts(taskDir: string): Promise<Artifact[]> {
  const files = [...new Set(AREAS.map((a) => a.dir))].flatMap((dir) => walk(path.join(taskDir, dir)));
  const out: Artifact[] = [];
  for (const file of files.sort()) {
    const relative = path.relative(taskDir, file).split(path.sep).join('/');
    const kind = kindOf(relative);
    if (!kind) continue;
    const stat = fs.statSync(file);
    out.push({ path: relative, kind, size: stat.size, sha256: await sha256Of(file, stat) });
  }
  return out;
}

/**
 * The file an artifact path names, or null. The path must be relative, free of `..`, inside
 * an artifact area, and must still be inside the task folder once links are resolved.
 */
export function resolveArtifact(taskDir: string, requested: string): string | null {
  if (!requested || requested.includes('\0') || path.isAbsolute(requested) || requested.split(/[\\/]/).includes('..')) return null;
  if (!kindOf(requested)) return null;
  const candidate = path.join(taskDir, requested);
  let real: string;
  let root: string;
  try {
    real = fs.realpathSync(candidate);
    root = fs.realpathSync(taskDir);
  } catch {
    return null;
  }
  if (!real.startsWith(root + path.sep)) return null;
  return fs.statSync(real).isFile() ? real : null;
}
