import type { Config } from '../config.js';
import type { Principal } from '../auth/principal.js';
import { checkOutboundUrl, OutboundUrlError } from '../net/index.js';
import { validateCaptioning, validateSourceSyntax, validateTransforms, validateUploadsExist } from '../preprocess/index.js';
import type { TrainingTaskCreate } from '../domain/schemas/training.js';
import { RequestValidationError, type ValidationIssue } from './errors.js';

/**
 * Checks of a create body that a JSON schema cannot state: where the webhook may point,
 * what the sources and transforms say (and that its uploads exist), whether the captioning
 * strategy can run here.
 * Every issue is reported at once, FastAPI-style.
 */
export function createValidator(config: Config) {
  return async (body: TrainingTaskCreate, principal: Principal): Promise<void> => {
    const issues: ValidationIssue[] = [];
    if (body.webhook_url) issues.push(...(await checkWebhookUrl(body.webhook_url, config)));
    if (body.source_images?.length) {
      const syntax = validateSourceSyntax(body.source_images, config);
      issues.push(...(syntax.length ? syntax : await validateUploadsExist(body.source_images, config, principal.tenantId)));
    }
    if (body.preprocessing_transforms) issues.push(...validateTransforms(body.preprocessing_transforms));
    issues.push(...validateCaptioning(body.preprocessing_captioning_strategy ?? null, body.preprocessing_captioning_prompt ?? null, config));
    if (issues.length) throw new RequestValidationError(issues);
  };
}

/** The SSRF rule at the door: a webhook to a private or metadata address is refused at creation. */
export async function checkWebhookUrl(url: string, config: Config): Promise<ValidationIssue[]> {
  try {
    await checkOutboundUrl(url, { allowPrivateNetworks: config.allowPrivateNetworks, label: 'webhook_url' });
    return [];
  } catch (err) {
    if (!(err instanceof OutboundUrlError)) throw err;
    const type = err.reason === 'invalid' ? 'url_parsing' : err.reason === 'scheme' ? 'url_scheme' : 'url_not_allowed';
    return [{ loc: ['body', 'webhook_url'], msg: err.message, type }];
  }
}
