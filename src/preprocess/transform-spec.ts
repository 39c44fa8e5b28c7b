import type { Issue } from './types.js';

/** Parsed, validated transforms; `applyTransforms` consumes only these. */
export type Fit = 'cover' | 'contain' | 'fill' | 'inside' | 'outside';
export type Transform =
  | { type: 'resize'; maxSide?: number; width?: number; height?: number; fit?: Fit }
  | { type: 'center_crop' | 'subject_crop'; width?: number; height?: number; aspectRatio?: number }
  | { type: 'pad_to_square'; color: string }
  | { type: 'grayscale' }
  | { type: 'flip_horizontal' };

const FITS: readonly Fit[] = ['cover', 'contain', 'fill', 'inside', 'outside'];
const MAX_TRANSFORMS = 32;
const MAX_SIDE = 8192;
const FIELDS: Record<Transform['type'], string[]> = {
  resize: ['max_side', 'width', 'height', 'fit'],
  center_crop: ['size', 'width', 'height', 'aspect_ratio'],
  subject_crop: ['size', 'width', 'height', 'aspect_ratio'],
  pad_to_square: ['color'],
  grayscale: [],
  flip_horizontal: [],
};
const BASE_LOC = ['body', 'preprocessing_transforms'];

/** Validates and parses in one pass, so what was validated is exactly what runs. */
export function parseTransforms(input: unknown): { transforms: Transform[]; issues: Issue[] } {
  const issues: Issue[] = [];
  if (input === null || input === undefined) return { transforms: [], issues };
  if (!Array.isArray(input)) return { transforms: [], issues: [{ loc: BASE_LOC, msg: 'Input should be a valid list', type: 'list_type' }] };
  if (input.length > MAX_TRANSFORMS) {
    issues.push({ loc: BASE_LOC, msg: `List should have at most ${MAX_TRANSFORMS} items`, type: 'too_long' });
  }
  const transforms: Transform[] = [];
  input.forEach((raw, index) => {
    const parsed = parseOne(raw, [...BASE_LOC, index], issues);
    if (parsed) transforms.push(parsed);
  });
  return { transforms: issues.length ? [] : transforms, issues };
}

function parseOne(raw: unknown, loc: (string | number)[], issues: Issue[]): Transform | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    issues.push({ loc, msg: 'Input should be a valid dictionary', type: 'dict_type' });
    return null;
  }
  const spec = raw as Record<string, unknown>;
  const type = spec.type;
  if (typeof type !== 'string' || !(type in FIELDS)) {
    const known = Object.keys(FIELDS).join(', ');
    issues.push({
      loc: [...loc, 'type'],
      msg: type === undefined ? `Field required; one of ${known}` : `Unknown transform type ${JSON.stringify(type)}; expected one of ${known}`,
      type: type === undefined ? 'missing' : 'literal_error',
    });
    return null;
  }
  const kind = type as Transform['type'];
  const before = issues.length;
  for (const key of Object.keys(spec)) {
    if (key !== 'type' && !FIELDS[kind].includes(key)) {
      issues.push({ loc: [...loc, key], msg: `Extra inputs are not permitted for ${kind}; allowed: ${FIELDS[kind].join(', ') || 'none'}`, type: 'extra_forbidden' });
    }
  }
  const int = (key: string): number | undefined => {
    const v = spec[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_SIDE) {
      issues.push({ loc: [...loc, key], msg: `Input should be an integer from 1 to ${MAX_SIDE}`, type: 'int_type' });
    }
    return v as number;
  };
  const fail = (key: string, msg: string, t = 'value_error') => issues.push({ loc: [...loc, key], msg, type: t });

  let result: Transform | null = null;
  switch (kind) {
    case 'resize': {
      const maxSide = int('max_side');
      const width = int('width');
      const height = int('height');
      const fit = spec.fit;
      if (fit !== undefined && !FITS.includes(fit as Fit)) fail('fit', `Input should be one of ${FITS.join(', ')}`, 'literal_error');
      if (maxSide !== undefined && (width !== undefined || height !== undefined)) fail('max_side', 'Give either max_side or width/height, not both');
      if (maxSide === undefined && width === undefined && height === undefined) fail('max_side', 'resize needs max_side, width or height', 'missing');
      result = { type: 'resize', maxSide, width, height, fit: fit as Fit | undefined };
      break;
    }
    case 'center_crop':
    case 'subject_crop': {
      const size = int('size');
      const width = int('width');
      const height = int('height');
      const aspectRatio = parseAspect(spec.aspect_ratio);
      if (spec.aspect_ratio !== undefined && aspectRatio === undefined) {
        fail('aspect_ratio', 'Input should be "W:H" (e.g. "1:1", "3:4") or a number from 0.1 to 10');
      }
      if ((width === undefined) !== (height === undefined)) fail(width === undefined ? 'width' : 'height', 'width and height go together', 'missing');
      const forms = [size !== undefined, width !== undefined || height !== undefined, spec.aspect_ratio !== undefined].filter(Boolean).length;
      if (forms > 1) fail('size', 'Give one of size, width/height or aspect_ratio');
      result = { type: kind, width: size ?? width, height: size ?? height, aspectRatio };
      break;
    }
    case 'pad_to_square': {
      const color = spec.color ?? '#ffffff';
      if (typeof color !== 'string' || !/^#[0-9a-f]{6}$/i.test(color)) fail('color', 'Input should be a colour like "#rrggbb"');
      result = { type: 'pad_to_square', color: color as string };
      break;
    }
    case 'grayscale':
    case 'flip_horizontal':
      result = { type: kind };
  }
  return issues.length === before ? result : null;
}

function parseAspect(value: unknown): number | undefined {
  let ratio: number | undefined;
  if (typeof value === 'number') ratio = value;
  else if (typeof value === 'string') {
    const m = value.match(/^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$/);
    if (m) ratio = Number(m[1]) / Number(m[2]);
  }
  return ratio !== undefined && Number.isFinite(ratio) && ratio >= 0.1 && ratio <= 10 ? ratio : undefined;
}
