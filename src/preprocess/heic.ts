import { Worker, type WorkerOptions } from 'node:worker_threads';
import zlib from 'node:zlib';
import sharp from 'sharp';
import type { HeicReply, HeicRequest } from './heic-worker.js';

/**
 * HEIF whose pictures are HEVC-coded: what an iPhone saves by default. The libvips inside sharp is
 * built without an HEVC decoder (it reads only the header), so these go through libheif's
 * WebAssembly build instead (decision 0009).
 */
export const isHevcHeif = (meta: sharp.Metadata): boolean => meta.format === 'heif' && meta.compression === 'hevc';

export class HeicDecodeError extends Error {}

/** A 12-MP photo decodes in about a second; a file that takes far longer is hostile or broken. */
const DECODE_TIMEOUT_MS = 60_000;

const FROM_SOURCES = import.meta.url.endsWith('.ts');
const WORKER = new URL(`./heic-worker.${FROM_SOURCES ? 'ts' : 'js'}`, import.meta.url);

/**
 * Run from the sources (development, tests), the thread must register tsx itself: tsx leaves
 * worker threads alone. The compiled build runs the .js beside this module.
 */
function startWorker(options: WorkerOptions): Worker {
  if (!FROM_SOURCES) return new Worker(WORKER, options);
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  return new Worker(`import(${tsx}).then((tsx) => tsx.register()).then(() => import(${JSON.stringify(WORKER.href)}))`, { ...options, eval: true });
}

/** Decodes in a worker thread of its own: a second of wasm must not stall the server's event loop. */
function decodeInWorker(bytes: Buffer, maxPixels: number, signal?: AbortSignal): Promise<Extract<HeicReply, { ok: true }>> {
  signal?.throwIfAborted();
  const request: HeicRequest = { bytes: new Uint8Array(bytes), maxPixels };
  const worker = startWorker({ workerData: request, transferList: [request.bytes.buffer as ArrayBuffer], stdout: true, stderr: true });
  return new Promise((resolve, reject) => {
    // Whichever comes first (the reply, an error, the timeout or a cancel) ends the thread.
    const settle = (outcome: () => void) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      outcome();
    };
    const fail = (err: Error) => settle(() => reject(err));
    const onAbort = () => fail(signal!.reason as Error);
    const timer = setTimeout(() => fail(new HeicDecodeError(`HEVC decoding took over ${DECODE_TIMEOUT_MS / 1000} s`)), DECODE_TIMEOUT_MS);
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (reply: HeicReply) => settle(() => (reply.ok ? resolve(reply) : reject(new HeicDecodeError(reply.error.trim())))));
    worker.once('error', (err) => fail(new HeicDecodeError(err.message.split('\n')[0])));
    worker.once('exit', (code) => fail(new HeicDecodeError(`the HEVC decoder stopped (exit code ${code})`)));
  });
}

/**
 * The upright pixels of an HEVC-coded HEIF as a lossless PNG that sharp reads like any other
 * image, carrying the photo's ICC profile (an iPhone's Display P3) so that conversion to sRGB
 * later keeps its colours.
 */
export async function hevcHeifToPng(bytes: Buffer, icc: Buffer | undefined, maxPixels: number, signal?: AbortSignal): Promise<Buffer> {
  const { data, width, height, channels } = await decodeInWorker(bytes, maxPixels, signal);
  // Level 1: the PNG lives only until the dataset is rendered from it.
  const png = await sharp(data, { raw: { width, height, channels } }).png({ compressionLevel: 1 }).toBuffer();
  return icc ? withIccProfile(png, icc) : png;
}

/**
 * What libheif finds wrong with a HEIF file whose header libvips could not read, in libheif's words
 * ("Unexpected end of file: …"), or null if libheif decodes it. Asked here rather than read from
 * libvips' error, because that error text comes from a buffer that concurrent operations share,
 * and it sometimes arrived without libheif's line.
 */
export async function heifProblem(bytes: Buffer, maxPixels: number, signal?: AbortSignal): Promise<string | null> {
  try {
    await decodeInWorker(bytes, maxPixels, signal);
    return null;
  } catch (err) {
    if (!(err instanceof HeicDecodeError)) throw err;
    return err.message.replace(/^Invalid input: /, '');
  }
}

/**
 * Adds an iCCP chunk after IHDR. Sharp can only attach a profile by converting the pixels into it,
 * and these pixels are already in the photo's own colour space.
 */
export function withIccProfile(png: Buffer, icc: Buffer): Buffer {
  const IHDR_END = 8 + 4 + 4 + 13 + 4; // signature, then IHDR's length, type, data and CRC
  const body = Buffer.concat([Buffer.from('iCCP'), Buffer.from('icc\0\0', 'latin1'), zlib.deflateSync(icc)]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length - 4);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body));
  return Buffer.concat([png.subarray(0, IHDR_END), length, body, crc, png.subarray(IHDR_END)]);
}
