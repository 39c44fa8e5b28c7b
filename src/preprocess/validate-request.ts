import type { Config } from '../config.js';
import { isLexicallyUnderRoots, parseSource, SourceError } from './sources.js';
import { openUpload, UploadNotFoundError } from './uploads.js';
import { parseTransforms } from './transform-spec.js';
import type { Issue } from './types.js';

const STRATEGIES = ['trigger_only', 'template', 'provided', 'vlm'];
const MAX_PROMPT = 2000;
const MAX_SOURCES = 1000;

/** Create-time check of preprocessing_transforms; [] when valid. */
export function validateTransforms(transforms: unknown): Issue[] {
  return parseTransforms(transforms).issues;
}

/** Create-time check of the captioning strategy and prompt; null strategy means the default. */
export function validateCaptioning(strategy: string | null, prompt: string | null, config: Config): Issue[] {
  const issues: Issue[] = [];
  if (strategy !== null && !STRATEGIES.includes(strategy)) {
    issues.push({ loc: ['body', 'preprocessing_captioning_strategy'], msg: `Input should be one of ${STRATEGIES.join(', ')}`, type: 'literal_error' });
  }
  if (strategy === 'vlm' && !config.vlm.url && !config.vlm.model) {
    issues.push({
      loc: ['body', 'preprocessing_captioning_strategy'],
      msg: 'vlm captioning is not available: the server has neither KILN_VLM_URL nor KILN_VLM_MODEL configured',
      type: 'value_error',
    });
  }
  if (prompt !== null && prompt.length > MAX_PROMPT) {
    issues.push({ loc: ['body', 'preprocessing_captioning_prompt'], msg: `String should have at most ${MAX_PROMPT} characters`, type: 'string_too_long' });
  }
  return issues;
}

/**
 * Create-time check of source_images that touches neither network nor disk: allowed scheme,
 * well-formed entry, local paths only under KILN_SOURCE_ROOTS. The stage re-checks everything.
 */
export function validateSourceSyntax(sources: string[], config: Config): Issue[] {
  const loc = ['body', 'source_images'];
  if (sources.length === 0) return [{ loc, msg: 'List should have at least 1 item', type: 'too_short' }];
  if (sources.length > MAX_SOURCES) return [{ loc, msg: `List should have at most ${MAX_SOURCES} items`, type: 'too_long' }];
  const issues: Issue[] = [];
  // base64 inflates by 4/3; anything longer cannot decode to an acceptable file.
  const maxDataChars = Math.ceil((config.maxDownloadBytes * 4) / 3) + 256;
  sources.forEach((source, index) => {
    const at = [...loc, index];
    if (typeof source !== 'string') {
      issues.push({ loc: at, msg: 'Input should be a valid string', type: 'string_type' });
      return;
    }
    try {
      const ref = parseSource(source);
      if (ref.kind === 'local') {
        if (config.sourceRoots.length === 0) {
          issues.push({ loc: at, msg: 'local paths are not allowed on this server (KILN_SOURCE_ROOTS is empty)', type: 'value_error' });
        } else if (!isLexicallyUnderRoots(ref.path, config.sourceRoots)) {
          issues.push({ loc: at, msg: 'path is outside the allowed source roots (KILN_SOURCE_ROOTS)', type: 'value_error' });
        }
      } else if (ref.kind === 'data' && source.length > maxDataChars) {
        issues.push({ loc: at, msg: `data: URI is larger than the ${config.maxDownloadBytes}-byte limit`, type: 'value_error' });
      } else if (ref.kind === 'http' && source.length > 8192) {
        issues.push({ loc: at, msg: 'URL is longer than 8192 characters', type: 'value_error' });
      }
    } catch (err) {
      if (!(err instanceof SourceError)) throw err;
      issues.push({ loc: at, msg: `source ${err.message}`, type: 'value_error' });
    }
  });
  return issues;
}

/**
 * Create-time check that each upload:// reference names an upload of this tenant that still
 * exists, so that an expired or mistyped one is a 422 at its index rather than a task that
 * fails in preprocessing. Call it after validateSourceSyntax found nothing.
 */
export async function validateUploadsExist(sources: string[], config: Config, tenantId: string | null): Promise<Issue[]> {
  const issues: Issue[] = [];
  for (const [index, source] of sources.entries()) {
    if (parseSource(source).kind !== 'upload') continue;
    try {
      await openUpload(config, tenantId, source.trim());
    } catch (err) {
      if (!(err instanceof UploadNotFoundError)) throw err;
      const kept =
        config.uploadRetentionHours > 0
          ? `uploads are deleted ${config.uploadRetentionHours} hours after they were made (KILN_UPLOAD_RETENTION_HOURS), or sooner by DELETE`
          : 'it was deleted';
      issues.push({ loc: ['body', 'source_images', index], msg: `${err.message}: ${kept}; an upload is usable only by the tenant that made it`, type: 'value_error' });
    }
  }
  return issues;
}
