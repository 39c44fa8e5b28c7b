import type { Config } from '../config.js';
import type { Principal } from '../auth/principal.js';
import type { TrainingTaskCreate } from './schemas/training.js';
import { RequestValidationError, type ValidationIssue } from './errors.js';

/**
 * Checks of a create body that a JSON schema cannot state. Each returns FastAPI-style
 * issues so a client sees every problem of its request at once.
 */
export function createValidator(config: Config) {
  return async (body: TrainingTaskCreate, _principal: Principal): Promise<void> => {
    const issues: ValidationIssue[] = [];
    if (body.webhook_url) issues.push(...(await checkWebhookUrl(body.webhook_url, config)));
    if (issues.length) throw new RequestValidationError(issues);
  };
}

async function checkWebhookUrl(url: string, _config: Config): Promise<ValidationIssue[]> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [{ loc: ['body', 'webhook_url'], msg: 'Input should be a valid URL', type: 'url_parsing' }];
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return [{ loc: ['body', 'webhook_url'], msg: 'URL scheme should be http or https', type: 'url_scheme' }];
  }
  return [];
}
