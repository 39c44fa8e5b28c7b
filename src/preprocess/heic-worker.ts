import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

/** The slice of libheif's embind API this decoder calls; libheif-js ships no types for its bundle. */
interface HeifError {
  code: { value: number };
  message: string;
}
interface HeifPlane {
  data: Uint8Array;
  width: number;
  height: number;
  stride: number;
}
interface LibHeif {
  heif_context_alloc(): object;
  heif_context_free(ctx: object): void;
  heif_context_read_from_memory(ctx: object, bytes: Uint8Array): HeifError;
  heif_js_context_get_primary_image_handle(ctx: object): object | HeifError;
  heif_image_handle_get_width(handle: object): number;
  heif_image_handle_get_height(handle: object): number;
  heif_image_handle_has_alpha_channel(handle: object): number;
  heif_image_handle_release(handle: object): void;
  heif_js_decode_image2(handle: object, colorspace: unknown, chroma: unknown): { image: object; channels: HeifPlane[] } | HeifError;
  heif_image_release(image: object): void;
  heif_colorspace: { heif_colorspace_RGB: unknown };
  heif_chroma: { heif_chroma_interleaved_RGB: unknown; heif_chroma_interleaved_RGBA: unknown };
}

export interface HeicRequest {
  bytes: Uint8Array;
  /** Checked on the header, before a pixel is decoded. */
  maxPixels: number;
}
export type HeicReply = { ok: true; data: Uint8Array; width: number; height: number; channels: 3 | 4 } | { ok: false; error: string };

const isError = (x: object): x is HeifError => 'code' in x && 'message' in x;

/**
 * Decodes the primary picture to interleaved 8-bit RGB(A), upright: libheif applies the file's
 * rotation, mirroring and crop itself, which is where an iPhone records how the photo was held.
 */
function decode(heif: LibHeif, { bytes, maxPixels }: HeicRequest): HeicReply {
  const ctx = heif.heif_context_alloc();
  try {
    const read = heif.heif_context_read_from_memory(ctx, bytes);
    if (read.code.value !== 0) return { ok: false, error: read.message };
    const handle = heif.heif_js_context_get_primary_image_handle(ctx);
    if (isError(handle)) return { ok: false, error: handle.message };
    try {
      const [width, height] = [heif.heif_image_handle_get_width(handle), heif.heif_image_handle_get_height(handle)];
      if (width * height > maxPixels) return { ok: false, error: `too many pixels: ${width}x${height}` };
      const channels = heif.heif_image_handle_has_alpha_channel(handle) ? 4 : 3;
      const chroma = channels === 4 ? heif.heif_chroma.heif_chroma_interleaved_RGBA : heif.heif_chroma.heif_chroma_interleaved_RGB;
      const image = heif.heif_js_decode_image2(handle, heif.heif_colorspace.heif_colorspace_RGB, chroma);
      if (isError(image)) return { ok: false, error: image.message };
      try {
        const [plane] = image.channels;
        const row = plane.width * channels;
        const data = new Uint8Array(row * plane.height);
        for (let y = 0; y < plane.height; y++) data.set(plane.data.subarray(y * plane.stride, y * plane.stride + row), y * row);
        return { ok: true, data, width: plane.width, height: plane.height, channels };
      } finally {
        heif.heif_image_release(image.image);
      }
    } finally {
      heif.heif_image_handle_release(handle);
    }
  } finally {
    heif.heif_context_free(ctx);
  }
}

// One decode per thread: the wasm heap a 12-MP photo grows is returned when the thread ends.
const heif = createRequire(import.meta.url)('libheif-js/wasm-bundle') as LibHeif;
const reply = decode(heif, workerData as HeicRequest);
parentPort!.postMessage(reply, reply.ok ? [reply.data.buffer as ArrayBuffer] : []);
