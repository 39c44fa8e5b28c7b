import { Worker, type WorkerOptions } from 'node:worker_threads';
import zlib from 'node:zlib';
import sharp from 'sharp';
import type { HeicReply, HeicRequest } from './heic-worker.js';
import { PixelBudget } from './pixel-budget.js';

/**
 * HEIF whose pictures are HEVC-coded: what an iPhone saves by default. The libvips inside sharp is
 * built without an HEVC decoder (it reads only the header), so these go through libheif's
 * WebAssembly build instead (decision 0009).
 */
export const isHevcHeif = (meta: sharp.Metadata): boolean => meta.format === 'heif' && meta.compression === 'hevc';

export class HeicDecodeError extends Error {}

/** A 12-MP photo decodes in about a second; a file that takes far longer is hostile or broken. */
const DECODE_TIMEOUT_MS = 60_000;

/**
 * Pixels decoded at once, across every task of this process. A decode peaks near 10 bytes a
 * pixel (four 12-MP photos at once raised the process by about 500 MB), so 48 MP keeps HEIC
 * decoding near half a gigabyte however many preprocessing stages and images run together.
 */
export const HEIC_DECODING = new PixelBudget(48_000_000);

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

/** Runs `work` once the budget admits `pixels` (unknown: as many as the budget holds), then gives them back. */
async function withinBudget<T>(pixels: number | null, signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
  const release = await HEIC_DECODING.take(pixels ?? HEIC_DECODING.limit, signal);
  try {
    return await work();
  } finally {
    release();
  }
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
export async function hevcHeifToPng(bytes: Buffer, meta: Partial<Pick<sharp.Metadata, 'icc' | 'width' | 'height'>>, maxPixels: number, signal?: AbortSignal): Promise<Buffer> {
  const pixels = meta.width && meta.height ? meta.width * meta.height : null;
  // The budget covers the PNG encoding too: the decoded pixels are held until it is done.
  return withinBudget(pixels, signal, async () => {
    const { data, width, height, channels } = await decodeInWorker(bytes, maxPixels, signal);
    // Level 1: the PNG lives only until the dataset is rendered from it.
    const png = await sharp(data, { raw: { width, height, channels } }).png({ compressionLevel: 1 }).toBuffer();
    return meta.icc ? withIccProfile(png, meta.icc) : png;
  });
}

/**
 * What libheif finds wrong with a HEIF file whose header libvips could not read, in libheif's words
 * ("Unexpected end of file: …"), or null if libheif decodes it. Asked here rather than read from
 * libvips' error, because that error text comes from a buffer that concurrent operations share,
 * and it sometimes arrived without libheif's line.
 */
export async function heifProblem(bytes: Buffer, maxPixels: number, signal?: AbortSignal): Promise<string | null> {
  try {
    await withinBudget(null, signal, () => decodeInWorker(bytes, maxPixels, signal));
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
