import sharp from 'sharp';
import { HeicDecodeError, heifProblem, hevcHeifToPng, isHevcHeif } from './heic.js';

/**
 * Raster formats a trainer can use, by sharp's name, with the name people know them by. SVG, PDF
 * and the rest are refused before sharp parses them.
 */
export const RASTER_FORMATS: Readonly<Record<string, string>> = { jpeg: 'JPEG', png: 'PNG', webp: 'WebP', avif: 'AVIF', heif: 'HEIC', tiff: 'TIFF', gif: 'GIF' };

export interface ImageFacts {
  format: string;
  width: number;
  height: number;
  /** dHash of the upright image, for near-duplicate detection. */
  dhash: bigint;
  /** For a photo sharp cannot decode itself (HEVC-coded HEIF): its pixels as a PNG, to render from. */
  decoded?: Buffer;
}

export interface InspectLimits {
  maxInputPixels: number;
  minImageSide: number;
}

export class ImageRejected extends Error {}

/** Recognises non-raster formats by their first bytes, so hostile SVG/HTML never reach a parser. */
function sniffText(buf: Buffer): string | null {
  if (buf[0] === 0x1f && buf[1] === 0x8b) return 'not a raster image (gzip-compressed, e.g. SVGZ)';
  if (buf.subarray(0, 5).toString('latin1') === '%PDF-') return 'not a raster image (PDF)';
  const head = buf
    .subarray(0, 1024)
    .toString('utf8')
    .replace(/^\uFEFF/, '')
    .trimStart()
    .toLowerCase();
  if (/^(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*(<!doctype svg|<svg)/.test(head) || (head.startsWith('<?xml') && head.includes('<svg'))) {
    return 'not a raster image (SVG)';
  }
  if (/^(<!--[\s\S]*?-->\s*)*(<!doctype html|<html|<head|<body)/.test(head)) return 'not an image (an HTML page)';
  const brand = isoMediaBrand(buf);
  if (brand !== null && !HEIF_BRANDS.has(brand)) return `not an image (a video or other ISO media file, brand "${brand}"; a Live Photo's still is the .HEIC or .JPG beside it)`;
  return null;
}

/** Major brands of HEIF stills (HEIC, AVIF and their sequences); MP4 and QuickTime use others. */
const HEIF_BRANDS = new Set(['heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'mif1', 'msf1', 'avif', 'avis']);

/** The major brand of an ISO base media file (HEIF, MP4, MOV), which opens with an ftyp box. */
function isoMediaBrand(buf: Buffer): string | null {
  if (buf.length < 12 || buf.subarray(4, 8).toString('latin1') !== 'ftyp') return null;
  return buf.subarray(8, 12).toString('latin1').trim();
}

const megapixels = (px: number) => `${(px / 1e6).toFixed(1)} MP`;

/**
 * Decides whether `buf` is a usable still raster image. Dimensions come from the header first, so
 * an oversized image is refused without decoding; then the whole image is decoded (that is what
 * catches truncation) while computing its perceptual hash. An HEVC-coded HEIF is decoded once,
 * here, and comes back as `decoded` for rendering.
 */
export async function inspectImage(buf: Buffer, limits: InspectLimits, signal?: AbortSignal): Promise<ImageFacts> {
  if (buf.length === 0) throw new ImageRejected('empty file (0 bytes)');
  const text = sniffText(buf);
  if (text) throw new ImageRejected(text);

  let meta: sharp.Metadata;
  try {
    // limitInputPixels: false only here: metadata reads the header and decodes no pixels.
    meta = await sharp(buf, { limitInputPixels: false }).metadata();
  } catch {
    const brand = isoMediaBrand(buf);
    if (brand === null) throw new ImageRejected('not an image (unrecognised format)');
    const why = (await heifProblem(buf, limits.maxInputPixels, signal)) ?? 'libvips cannot read its header';
    throw new ImageRejected(`corrupt or truncated ${brand.startsWith('avi') ? 'AVIF image' : 'HEIC photo'} (${why})`);
  }
  const format = meta.format ?? 'unknown';
  if (format === 'svg') throw new ImageRejected('not a raster image (SVG)');
  if (!Object.hasOwn(RASTER_FORMATS, format)) throw new ImageRejected(`unsupported image format (${format})`);
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  if ((meta.pages ?? 1) > 1) throw new ImageRejected(`animated or multi-page image (${meta.pages} frames)`);
  if (width * height > limits.maxInputPixels) {
    throw new ImageRejected(`too many pixels: ${width}x${height} is ${megapixels(width * height)}, over the ${megapixels(limits.maxInputPixels)} limit (KILN_MAX_INPUT_PIXELS)`);
  }
  if (Math.min(width, height) < limits.minImageSide) {
    throw new ImageRejected(`too small: ${width}x${height}, the shorter side must be at least ${limits.minImageSide} px (KILN_MIN_IMAGE_SIDE)`);
  }

  let decoded: Buffer | undefined;
  if (isHevcHeif(meta)) {
    try {
      decoded = await hevcHeifToPng(buf, meta, limits.maxInputPixels, signal);
    } catch (err) {
      if (!(err instanceof HeicDecodeError)) throw err;
      throw new ImageRejected(`corrupt or truncated HEIC photo (${err.message})`);
    }
  }
  let grid: Buffer;
  try {
    grid = await sharp(decoded ?? buf, { failOn: 'truncated', limitInputPixels: limits.maxInputPixels })
      .rotate()
      .grayscale()
      .resize(9, 8, { fit: 'fill' })
      .raw()
      .toBuffer();
  } catch (err) {
    throw new ImageRejected(`corrupt or truncated image (${(err as Error).message.split('\n')[0]})`);
  }
  return { format, width, height, dhash: dhash(grid), decoded };
}

/** 64-bit difference hash of a 9x8 grayscale grid: bit = left pixel brighter than right. */
function dhash(grid: Buffer): bigint {
  let hash = 0n;
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) hash = (hash << 1n) | (grid[y * 9 + x] > grid[y * 9 + x + 1] ? 1n : 0n);
  }
  return hash;
}

export function hammingDistance(a: bigint, b: bigint): number {
  let diff = a ^ b;
  let count = 0;
  while (diff) {
    count += Number(diff & 1n);
    diff >>= 1n;
  }
  return count;
}
