import sharp, { type Sharp } from 'sharp';
import type { Transform } from './transform-spec.js';

export interface RenderedImage {
  data: Buffer;
  width: number;
  height: number;
  ext: 'jpg' | 'png';
}

export interface RenderLimits {
  maxInputPixels: number;
  /** Longest side of every output (KILN_DATASET_MAX_SIDE). */
  maxSide: number;
}

interface RawImage {
  data: Buffer;
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
}

const WHITE = '#ffffff';

/**
 * Turns one source image into its dataset images: upright (EXIF), alpha flattened on white, then
 * each transform in order, then capped to the dataset's longest side and encoded as RGB.
 * PNG sources stay PNG (lossless in, lossless out); everything else becomes JPEG q95 4:4:4.
 * flip_horizontal doubles the images; later transforms apply to both.
 */
export async function renderImage(input: Buffer, sourceFormat: string, transforms: Transform[], limits: RenderLimits): Promise<RenderedImage[]> {
  const ext = sourceFormat === 'png' ? 'png' : 'jpg';
  const decoded = () => sharp(input, { failOn: 'truncated', limitInputPixels: limits.maxInputPixels }).rotate().flatten({ background: WHITE });
  // Sharp orders the operations of one pipeline itself, so ordered transforms need one pass
  // each; with none, a single pass keeps JPEG shrink-on-load.
  if (transforms.length === 0) return [await encode(decoded(), ext, limits.maxSide)];

  let images = [await toRaw(decoded().toColourspace('srgb'))];
  for (const t of transforms) {
    if (t.type === 'flip_horizontal') {
      images = [...images, ...(await Promise.all(images.map((img) => toRaw(fromRaw(img).flop()))))];
    } else {
      images = await Promise.all(images.map((img) => toRaw(applyOne(fromRaw(img), img, t))));
    }
  }
  return Promise.all(images.map((img) => encode(fromRaw(img), ext, limits.maxSide)));
}

function applyOne(pipe: Sharp, img: RawImage, t: Exclude<Transform, { type: 'flip_horizontal' }>): Sharp {
  switch (t.type) {
    case 'resize':
      if (t.maxSide !== undefined) return pipe.resize({ width: t.maxSide, height: t.maxSide, fit: 'inside', withoutEnlargement: true });
      return pipe.resize({ width: t.width, height: t.height, fit: t.fit ?? 'cover', background: WHITE });
    case 'center_crop':
    case 'subject_crop': {
      // subject_crop keeps the region libvips' attention strategy picks (edges, saturated colour,
      // skin tones): the sneaker or the face of an off-centre photo, not the middle of the frame.
      const position = t.type === 'subject_crop' ? sharp.strategy.attention : 'centre';
      if (t.width !== undefined && t.height !== undefined) return pipe.resize({ width: t.width, height: t.height, fit: 'cover', position });
      // The largest region with the wanted aspect ratio (square by default): a cover at scale 1.
      const ratio = t.aspectRatio ?? 1;
      const width = img.width / img.height > ratio ? Math.max(1, Math.round(img.height * ratio)) : img.width;
      const height = img.width / img.height > ratio ? img.height : Math.max(1, Math.round(img.width / ratio));
      if (t.type === 'subject_crop') return pipe.resize({ width, height, fit: 'cover', position });
      return pipe.extract({ left: Math.floor((img.width - width) / 2), top: Math.floor((img.height - height) / 2), width, height });
    }
    case 'pad_to_square': {
      const side = Math.max(img.width, img.height);
      const top = Math.floor((side - img.height) / 2);
      const left = Math.floor((side - img.width) / 2);
      return pipe.extend({ top, bottom: side - img.height - top, left, right: side - img.width - left, background: t.color });
    }
    case 'grayscale':
      return pipe.grayscale();
  }
}

function fromRaw(img: RawImage): Sharp {
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } });
}

async function toRaw(pipe: Sharp): Promise<RawImage> {
  const { data, info } = await pipe.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

async function encode(pipe: Sharp, ext: 'jpg' | 'png', maxSide: number): Promise<RenderedImage> {
  const capped = pipe.resize({ width: maxSide, height: maxSide, fit: 'inside', withoutEnlargement: true }).toColourspace('srgb');
  const out = ext === 'png' ? capped.png() : capped.jpeg({ quality: 95, chromaSubsampling: '4:4:4' });
  const { data, info } = await out.toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, ext };
}
