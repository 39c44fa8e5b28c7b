import { open, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.js';
import { DownloadError, downloadToFile, type DownloadSettings } from './download.js';
import { linkOrCopy, mapLimit, sha256 } from './fs-util.js';
import type { SourceIndex } from './source-index.js';
import { localCaptionFile, parseSource, resolveLocalSource, SourceError } from './sources.js';
import type { ZipLimits } from './types.js';
import { openUpload, UploadNotFoundError } from './uploads.js';
import { extractZip, isZip, ZipRefusedError } from './zip.js';

/**
 * One source (or zip entry) after gathering: a file on local disk, or the reason there is none.
 * `filename` is the name an upload was sent under, which the user knows it by.
 */
export type Gathered =
  | { source: string; zipEntry: string | null; filename: string | null; file: string; providedCaption: string | null; reason: null }
  | { source: string; zipEntry: string | null; filename: string | null; file: null; providedCaption: null; reason: string };

export interface GatherContext {
  config: Config;
  tenantId: string | null;
  sourcesDir: string;
  index: SourceIndex;
  download: DownloadSettings;
  concurrency: number;
  zipLimits: ZipLimits;
  onSourceDone(): Promise<void>;
}

/** The "downloading" stage: every source becomes files on disk (zips unpacked) or a rejection, in source order. */
export async function gatherSources(sources: string[], ctx: GatherContext): Promise<Gathered[]> {
  const perSource = await mapLimit(sources, ctx.concurrency, async (source) => {
    ctx.download.signal.throwIfAborted();
    const gathered = await gatherOne(source, ctx);
    await ctx.onSourceDone();
    return gathered;
  });
  return perSource.flat();
}

async function gatherOne(source: string, ctx: GatherContext): Promise<Gathered[]> {
  try {
    const { file, caption, filename } = await fetchSource(source, ctx);
    const head = Buffer.alloc(4);
    const fd = await open(file, 'r');
    try {
      await fd.read(head, 0, 4, 0);
    } finally {
      await fd.close();
    }
    if (!isZip(head)) return [{ source, zipEntry: null, filename, file, providedCaption: caption, reason: null }];
    const images = await extractZip(file, path.join(ctx.sourcesDir, `zip-${sha256(source).slice(0, 16)}`), ctx.zipLimits);
    if (images.length === 0) throw new ZipRefusedError('zip contains no files besides captions');
    return images.map((img) => ({ source, zipEntry: img.entry, filename, file: img.file, providedCaption: img.caption, reason: null }));
  } catch (err) {
    if (err instanceof SourceError || err instanceof DownloadError || err instanceof ZipRefusedError || err instanceof UploadNotFoundError) {
      return [{ source, zipEntry: null, filename: null, file: null, providedCaption: null, reason: err.message }];
    }
    throw err;
  }
}

function tooLarge(bytes: number, limit: number): SourceError {
  return new SourceError(`file is ${bytes} bytes, over the ${limit}-byte limit (KILN_MAX_DOWNLOAD_BYTES)`);
}

/**
 * Puts the bytes of one source on local disk: downloads and uploads become the task's own files
 * in sources/, so that a retry still has them once the upload has expired or been deleted;
 * local files are read in place.
 */
async function fetchSource(source: string, ctx: GatherContext): Promise<{ file: string; caption: string | null; filename: string | null }> {
  const ref = parseSource(source);
  const limit = ctx.config.maxDownloadBytes;
  const key = sha256(source).slice(0, 16);
  switch (ref.kind) {
    case 'http': {
      const reused = await ctx.index.reusable(source);
      if (reused) return { file: reused.file, caption: null, filename: null };
      const dest = path.join(ctx.sourcesDir, `url-${key}`);
      const { sha256: digest, bytes } = await downloadToFile(ref.url, dest, ctx.download);
      await ctx.index.record(source, dest, digest, bytes);
      return { file: dest, caption: null, filename: null };
    }
    case 'local': {
      const real = await resolveLocalSource(ref.path, ctx.config.sourceRoots);
      const { size } = await stat(real);
      if (size > limit) throw tooLarge(size, limit);
      const captionFile = await localCaptionFile(real, ctx.config.sourceRoots);
      const caption = captionFile && (await stat(captionFile)).size <= 64 * 1024 ? (await readFile(captionFile, 'utf8')).trim() : null;
      return { file: real, caption, filename: null };
    }
    case 'data': {
      const bytes = Buffer.from(ref.base64, 'base64');
      if (bytes.length > limit) throw tooLarge(bytes.length, limit);
      const dest = path.join(ctx.sourcesDir, `data-${key}`);
      await writeFile(dest, bytes);
      return { file: dest, caption: null, filename: null };
    }
    case 'upload': {
      const kept = await ctx.index.reusable(source);
      if (kept) return { file: kept.file, caption: null, filename: kept.filename ?? null };
      const upload = await openUpload(ctx.config, ctx.tenantId, `upload://${ref.id}`);
      const dest = path.join(ctx.sourcesDir, `upload-${key}`);
      await linkOrCopy(upload.path, dest);
      await ctx.index.record(source, dest, upload.sha256, upload.size, upload.filename);
      return { file: dest, caption: null, filename: upload.filename };
    }
  }
}
