import sharp from 'sharp';
import type { Config } from '../config.js';
import { FetchError, OutboundUrlError, safeRequest } from '../net/index.js';
import type { CaptionStrategy, EntityType } from './types.js';

const DEFAULT_TEMPLATE = 'a photo of [trigger] [entity]';

/** The word [entity] stands for in templates. SUBJECT is a person in Kiln's use. */
const ENTITY_WORDS: Record<EntityType, string> = { PRODUCT: 'product', SUBJECT: 'person', STYLE: 'style' };

export interface CaptionContext {
  strategy: CaptionStrategy;
  prompt: string | null;
  triggerWord: string;
  entityType: EntityType;
}

/** Trainers key the LoRA on the trigger word, so every caption must contain it. */
export function withTrigger(caption: string, trigger: string): string {
  const text = caption.replace(/\s+/g, ' ').trim();
  if (!text) return trigger;
  const escaped = trigger.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^\\p{L}\\p{N}_])${escaped}($|[^\\p{L}\\p{N}_])`, 'u').test(text) ? text : `${trigger}, ${text}`;
}

function templateCaption(ctx: CaptionContext): string {
  const template = ctx.prompt?.trim() || DEFAULT_TEMPLATE;
  const filled = template.replaceAll('[trigger]', ctx.triggerWord).replaceAll('[entity]', ENTITY_WORDS[ctx.entityType]);
  return withTrigger(filled, ctx.triggerWord);
}

/** Caption of the strategies that need no model; `provided` is the .txt found beside the source. */
export function localCaption(ctx: CaptionContext, provided: string | null): string {
  switch (ctx.strategy) {
    case 'template':
      return templateCaption(ctx);
    case 'provided':
      return withTrigger(provided ?? '', ctx.triggerWord);
    default:
      return ctx.triggerWord;
  }
}

export class CaptionError extends Error {}

const VLM_DEFAULT_PROMPT =
  'Describe this image in one sentence for a text-to-image training caption. Describe the [entity], its setting, lighting and composition. Do not start with "The image".';
const VLM_IMAGE_SIDE = 768;
const VLM_MAX_RESPONSE_BYTES = 1024 * 1024;

export interface VlmSettings {
  connectTimeoutMs: number;
  timeoutMs: number;
  signal: AbortSignal;
}

/**
 * Asks an OpenAI-compatible chat-completions endpoint to describe one image. The endpoint is
 * operator configuration, so its own origin is exempt from the private-address rule (a local
 * vLLM is the usual setup); any other origin it points to is still vetted.
 */
export async function vlmCaption(image: Buffer, ctx: CaptionContext, config: Config, settings: VlmSettings): Promise<string> {
  if (!config.vlm.url) throw new CaptionError('vlm captioning needs KILN_VLM_URL (an OpenAI-compatible chat-completions endpoint) or KILN_VLM_MODEL (a local model folder)');
  const preview = await sharp(image).resize(VLM_IMAGE_SIDE, VLM_IMAGE_SIDE, { fit: 'inside', withoutEnlargement: true }).jpeg({ quality: 85 }).toBuffer();
  const prompt = (ctx.prompt?.trim() || VLM_DEFAULT_PROMPT).replaceAll('[trigger]', ctx.triggerWord).replaceAll('[entity]', ENTITY_WORDS[ctx.entityType]);
  const body = JSON.stringify({
    model: config.vlm.model || undefined,
    max_tokens: 200,
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: prompt },
          { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${preview.toString('base64')}` } },
        ],
      },
    ],
  });
  let origin: string;
  try {
    origin = new URL(config.vlm.url).origin;
  } catch {
    throw new CaptionError('KILN_VLM_URL is not a valid URL');
  }
  try {
    const res = await safeRequest(config.vlm.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(config.vlm.apiKey ? { authorization: `Bearer ${config.vlm.apiKey}` } : {}),
      },
      body,
      allowPrivateNetworks: config.allowPrivateNetworks,
      allowedOrigins: [origin],
      label: 'KILN_VLM_URL',
      maxBytes: VLM_MAX_RESPONSE_BYTES,
      connectTimeoutMs: settings.connectTimeoutMs,
      timeoutMs: settings.timeoutMs,
      signal: settings.signal,
    });
    if (res.status !== 200) throw new CaptionError(`vlm endpoint answered HTTP ${res.status}`);
    const parsed = JSON.parse(res.body.toString('utf8')) as { choices?: { message?: { content?: unknown } }[] };
    const content = parsed.choices?.[0]?.message?.content;
    if (typeof content !== 'string' || !content.trim()) throw new CaptionError('vlm endpoint returned no caption');
    return withTrigger(content, ctx.triggerWord);
  } catch (err) {
    settings.signal.throwIfAborted();
    if (err instanceof CaptionError) throw err;
    if (err instanceof OutboundUrlError || err instanceof FetchError) throw new CaptionError(`vlm request failed: ${err.message}`);
    if (err instanceof SyntaxError) throw new CaptionError('vlm endpoint returned invalid JSON');
    throw err;
  }
}
