import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../config.js';
import { describeBytes } from '../util/bytes.js';
import { sha256 } from './fs-util.js';
import { UPLOAD_ID } from './sources.js';

export interface StoredUpload {
  id: string;
  reference: string;
  filename: string;
  size: number;
  sha256: string;
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
    const stored: StoredUpload = { id, reference: `upload://${id}`, filename: cleanFilename(filename), size, sha256: hash.digest('hex') };
    await writeFile(path.join(staging, META_FILE), JSON.stringify({ ...stored, created_at: new Date().toISOString() }));
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
  const id = reference.replace(/^upload:\/\//i, '');
  if (!UPLOAD_ID.test(id)) throw new UploadNotFoundError(reference);
  const dir = path.join(tenantDir(config, tenantId), id);
  try {
    const meta = JSON.parse(await readFile(path.join(dir, META_FILE), 'utf8')) as StoredUpload;
    return { ...meta, path: path.join(dir, DATA_FILE) };
  } catch {
    throw new UploadNotFoundError(reference);
  }
}
