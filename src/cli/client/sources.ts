import fs from 'node:fs';
import path from 'node:path';
import type { KilnClient } from './http.js';
import { UsageError } from './http.js';

/** The images a folder contributes, by extension: what the server decodes, iPhone HEIC included. */
const IMAGE_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.heic': 'image/heic',
  '.heif': 'image/heif',
  '.avif': 'image/avif',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
};
const CONTENT_TYPES: Record<string, string> = { ...IMAGE_TYPES, '.zip': 'application/zip' };
const isImage = (name: string) => Object.hasOwn(IMAGE_TYPES, path.extname(name).toLowerCase());
export const IMAGE_EXTENSIONS_TEXT = Object.keys(IMAGE_TYPES).join(' ');
/** Files per upload request: well under the API's 200, and a failed batch costs little. */
export const UPLOAD_BATCH = 20;

export interface ResolvedSources {
  /** Local files to upload: images, and .zip archives as they are. */
  files: string[];
  /** http(s) URLs the server downloads itself. */
  urls: string[];
  /** Things worth telling the user (captions left behind, …). */
  notes: string[];
}

/** Expands the train command's arguments: folders to their images, zips and URLs kept whole. */
export function resolveSources(args: string[]): ResolvedSources {
  const out: ResolvedSources = { files: [], urls: [], notes: [] };
  for (const arg of args) {
    if (/^https?:\/\//i.test(arg)) {
      out.urls.push(arg);
      continue;
    }
    let stat: fs.Stats;
    try {
      stat = fs.statSync(arg);
    } catch {
      throw new UsageError(`${arg}: no such file or folder (give a folder, an image, a .zip or an http(s) URL)`);
    }
    if (stat.isDirectory()) {
      const names = fs.readdirSync(arg).sort();
      const images = names.filter(isImage);
      if (images.length === 0) throw new UsageError(`${arg}: no images in this folder (${IMAGE_EXTENSIONS_TEXT})`);
      out.files.push(...images.map((n) => path.join(arg, n)));
      // Uploaded images travel alone; only a zip keeps each caption beside its image.
      if (names.some((n) => path.extname(n).toLowerCase() === '.txt')) {
        out.notes.push(`${arg}: its .txt captions are not uploaded; to train with them, zip the folder and pass the .zip with --caption provided`);
      }
      continue;
    }
    if (!isImage(arg) && path.extname(arg).toLowerCase() !== '.zip') throw new UsageError(`${arg}: not an image (${IMAGE_EXTENSIONS_TEXT}) or a .zip`);
    out.files.push(arg);
  }
  return out;
}

interface Upload {
  reference: string;
  filename: string;
}

/** Uploads the files in batches, multipart field `file`; resolves to their upload:// references in order. */
export async function uploadFiles(client: KilnClient, files: string[], onBatch?: (done: number) => void): Promise<string[]> {
  const references: string[] = [];
  for (let i = 0; i < files.length; i += UPLOAD_BATCH) {
    const form = new FormData();
    for (const file of files.slice(i, i + UPLOAD_BATCH)) {
      const type = CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
      form.append('file', new Blob([fs.readFileSync(file)], { type }), path.basename(file));
    }
    const res = await client.request('/api/v1/uploads/', { method: 'POST', body: form });
    const { uploads } = (await res.json()) as { uploads: Upload[] };
    references.push(...uploads.map((u) => u.reference));
    onBatch?.(references.length);
  }
  return references;
}
