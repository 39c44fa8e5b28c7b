import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../config.js';
import { describeBytes } from '../util/bytes.js';
import { entriesOf, sha256 } from './fs-util.js';
import { UPLOAD_ID, uploadIdOf } from './sources.js';

export interface StoredUpload {
  id: string;
  reference: string;
  filename: string;
  size: number;
  sha256: string;
  created_at: string;
}

/** The API maps this to 413. */
export class UploadTooLargeError extends Error {
  readonly statusCode = 413;
  constructor(readonly limit: number) {
    super(`file is larger than the limit of ${describeBytes(limit)} set by KILN_MAX_DOWNLOAD_BYTES`);
    this.name = 'UploadTooLargeError';
  }
}

/** Unknown id and another tenant's id look the same, so ids cannot be probed across tenants. */
export class UploadNotFoundError extends Error {
  readonly statusCode = 404;
  constructor(reference: string) {
    super(`upload ${reference} not found`);
    this.name = 'UploadNotFoundError';
  }
}

const DATA_FILE = 'data';
const META_FILE = 'meta.json';

/**
 * Folder of one tenant's uploads. Tenant ids that are not plain names are hashed, so they can
 * neither escape the folder nor collide with `_`, the folder of tenant-less uploads.
 */
function tenantDir(config: Config, tenantId: string | null): string {
  const name = tenantId === null ? '_' : /^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$/.test(tenantId) ? tenantId : `h-${sha256(tenantId).slice(0, 32)}`;
  return path.join(config.dataDir, 'uploads', name);
}

function cleanFilename(filename: string): string {
  const base = path
    .basename(filename.replace(/\\/g, '/'))
    .replace(/\p{Cc}/gu, '')
    .trim();
  return base.slice(0, 255) || 'upload';
}

export async function saveUpload(config: Config, tenantId: string | null, filename: string, stream: Readable): Promise<StoredUpload> {
  const id = randomBytes(16).toString('base64url');
  const root = tenantDir(config, tenantId);
  const staging = path.join(root, `.${id}.partial`);
  await mkdir(staging, { recursive: true });
  const hash = createHash('sha256');
  let size = 0;
  try {
    await pipeline(
      stream,
      async function* cap(source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          size += chunk.length;
          if (size > config.maxDownloadBytes) throw new UploadTooLargeError(config.maxDownloadBytes);
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(path.join(staging, DATA_FILE)),
    );
    const stored: StoredUpload = { id, reference: `upload://${id}`, filename: cleanFilename(filename), size, sha256: hash.digest('hex'), created_at: new Date().toISOString() };
    await writeFile(path.join(staging, META_FILE), JSON.stringify(stored));
    // The folder appears under its id only when complete, so a reader never sees half an upload.
    await rename(staging, path.join(root, id));
    return stored;
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}

/** Finds a tenant's upload; the returned path is the stored bytes. */
export async function openUpload(config: Config, tenantId: string | null, reference: string): Promise<StoredUpload & { path: string }> {
  const dir = uploadDir(config, tenantId, reference);
  try {
    const meta = JSON.parse(await readFile(path.join(dir, META_FILE), 'utf8')) as StoredUpload;
    return { ...meta, path: path.join(dir, DATA_FILE) };
  } catch {
    throw new UploadNotFoundError(reference);
  }
}

function uploadDir(config: Config, tenantId: string | null, reference: string): string {
  const id = reference.replace(/^upload:\/\//i, '');
  if (!UPLOAD_ID.test(id)) throw new UploadNotFoundError(reference);
  return path.join(tenantDir(config, tenantId), id);
}

/** When an upload made now stops being usable, or null when uploads are kept until deleted. */
export function uploadExpiry(config: Config, createdAt: number): string | null {
  return config.uploadRetentionHours > 0 ? new Date(createdAt + config.uploadRetentionHours * HOUR_MS).toISOString() : null;
}

/** Deletes a tenant's upload; a task that names it and has not read it yet fails saying it is gone. */
export async function deleteUpload(config: Config, tenantId: string | null, reference: string): Promise<void> {
  const dir = uploadDir(config, tenantId, reference);
  try {
    await stat(path.join(dir, META_FILE));
  } catch {
    throw new UploadNotFoundError(reference);
  }
  await rm(dir, { recursive: true, force: true });
}

/**
 * Deletes the uploads that a task's `source_images` name, but those whose ids are in `keep`;
 * resolves to how many it deleted (one already gone, expired or deleted with another task, is
 * no error).
 */
export async function deleteUploadsOf(config: Config, tenantId: string | null, sources: string[], keep: ReadonlySet<string> = new Set()): Promise<number> {
  let deleted = 0;
  for (const source of sources) {
    const id = uploadIdOf(source);
    if (!id || keep.has(id)) continue;
    try {
      await deleteUpload(config, tenantId, id);
      deleted++;
    } catch (err) {
      if (!(err instanceof UploadNotFoundError)) throw err;
    }
  }
  return deleted;
}

const HOUR_MS = 3_600_000;
/** An upload's staging folder this old belongs to a request that died mid-transfer. */
const ABANDONED_PARTIAL_MS = 24 * HOUR_MS;

/**
 * Deletes the uploads older than KILN_UPLOAD_RETENTION_HOURS, except those whose ids are in
 * `waiting` (named by a task that has not been preprocessed yet), and the staging folders of
 * uploads that never finished. Resolves to how many uploads it deleted.
 */
export async function sweepUploads(config: Config, waiting: ReadonlySet<string>, now = Date.now()): Promise<number> {
  const root = path.join(config.dataDir, 'uploads');
  const keepFrom = config.uploadRetentionHours > 0 ? now - config.uploadRetentionHours * HOUR_MS : -Infinity;
  let deleted = 0;
  for (const tenant of await entriesOf(root)) {
    for (const name of await entriesOf(path.join(root, tenant))) {
      const dir = path.join(root, tenant, name);
      if (name.startsWith('.')) {
        if (name.endsWith('.partial') && (await stat(dir)).mtimeMs < now - ABANDONED_PARTIAL_MS) await rm(dir, { recursive: true, force: true });
        continue;
      }
      if (waiting.has(name)) continue;
      const created = await createdAt(dir);
      if (created !== null && created < keepFrom) {
        await rm(dir, { recursive: true, force: true });
        deleted++;
      }
    }
  }
  return deleted;
}

/** An upload's creation time from its metadata; null for a folder that is not an upload. */
async function createdAt(dir: string): Promise<number | null> {
  try {
    const meta = JSON.parse(await readFile(path.join(dir, META_FILE), 'utf8')) as { created_at?: string };
    const t = Date.parse(meta.created_at ?? '');
    return Number.isNaN(t) ? null : t;
  } catch {
    return null;
  }
}
