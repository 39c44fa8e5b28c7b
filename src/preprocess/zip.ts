import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import type { ZipLimits } from './types.js';

export interface ZipImage {
  entry: string;
  file: string;
  /** Text of the same-name .txt entry beside it, if any. */
  caption: string | null;
}

/** The whole archive is refused: a bomb, an unsafe entry name, or not a readable zip. */
export class ZipRefusedError extends Error {}

export function isZip(head: Buffer): boolean {
  return head.length >= 4 && head.readUInt32LE(0) === 0x04034b50;
}

const MAX_CAPTION_BYTES = 64 * 1024;
const ignored = (name: string) => name.endsWith('/') || name.startsWith('__MACOSX/') || path.posix.basename(name).startsWith('.');
const stem = (name: string) => name.replace(/\.[^./]*$/, '');

/**
 * Extracts the files of a zip into `destDir`, counting the bytes that really come out of the
 * inflater: the archive is refused as soon as an entry or the total passes its limit, whatever
 * the headers claim. Entry names with `..` or absolute paths refuse the archive (yauzl checks
 * them before any entry is handed out).
 */
export async function extractZip(zipFile: string, destDir: string, limits: ZipLimits): Promise<ZipImage[]> {
  await rm(destDir, { recursive: true, force: true });
  await mkdir(destDir, { recursive: true });
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(zipFile, { lazyEntries: true, validateEntrySizes: true, strictFileNames: false });
  } catch (err) {
    throw new ZipRefusedError(`not a readable zip archive (${(err as Error).message})`);
  }

  const images: { entry: string; file: string }[] = [];
  const captions = new Map<string, string>();
  let total = 0;
  let count = 0;
  let current = '';
  try {
    for await (const entry of zip.eachEntry()) {
      if (++count > limits.maxEntries) throw new ZipRefusedError(`zip has more than ${limits.maxEntries} entries`);
      const name = entry.fileName;
      current = name;
      if (ignored(name)) continue;
      const isCaption = name.toLowerCase().endsWith('.txt');
      const cap = isCaption ? Math.min(MAX_CAPTION_BYTES, limits.maxEntryBytes) : limits.maxEntryBytes;
      if (entry.uncompressedSize > cap) {
        throw new ZipRefusedError(`zip entry ${name} inflates to ${entry.uncompressedSize} bytes, over the ${cap}-byte limit`);
      }
      const chunks: Buffer[] = [];
      const file = path.join(destDir, `${String(images.length + 1).padStart(4, '0')}${path.extname(name).slice(0, 10)}`);
      let entryBytes = 0;
      const counter = async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          entryBytes += chunk.length;
          total += chunk.length;
          if (entryBytes > cap) throw new ZipRefusedError(`zip entry ${name} inflates past the ${cap}-byte limit (a zip bomb?)`);
          if (total > limits.maxTotalBytes) throw new ZipRefusedError(`zip inflates past the ${limits.maxTotalBytes}-byte limit (a zip bomb?)`);
          yield chunk;
        }
      };
      const sink = isCaption
        ? new Writable({
            write(chunk: Buffer, _enc, done) {
              chunks.push(chunk);
              done();
            },
          })
        : createWriteStream(file);
      await pipeline(await zip.openReadStreamPromise(entry), counter, sink);
      if (isCaption) captions.set(stem(name), Buffer.concat(chunks).toString('utf8').trim());
      else images.push({ entry: name, file });
    }
  } catch (err) {
    await rm(destDir, { recursive: true, force: true });
    if (err instanceof ZipRefusedError) throw err;
    const message = (err as Error).message;
    if (/absolute path|invalid relative path|invalid characters/.test(message)) {
      throw new ZipRefusedError(`zip has an unsafe entry path (${message})`);
    }
    if (/too many bytes in the stream/.test(message)) {
      throw new ZipRefusedError(`zip entry ${current} inflates past the size its header declares (a zip bomb?)`);
    }
    throw new ZipRefusedError(`zip could not be read (${message})`);
  } finally {
    zip.close();
  }
  return images.map((img) => ({ ...img, caption: captions.get(stem(img.entry)) ?? null }));
}
