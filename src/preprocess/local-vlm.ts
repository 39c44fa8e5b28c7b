import path from 'node:path';
import type { Config } from '../config.js';
import { runPython } from '../python/run.js';
import { CaptionError, withTrigger, type CaptionContext } from './captions.js';

const VLM_PROMPT = 'a photo of';

/**
 * Captions a batch of dataset images with the local vision-language model named by
 * KILN_VLM_MODEL, through `python -m kiln_trainer caption`: one process loads the model once
 * for the whole dataset. Returns each image's caption, trigger word included.
 */
export async function localVlmCaptions(images: string[], ctx: CaptionContext, config: Config, workDir: string, signal: AbortSignal): Promise<Map<string, string>> {
  const prompt = (ctx.prompt?.trim() || VLM_PROMPT).replaceAll('[trigger]', ctx.triggerWord);
  const captions = new Map<string, string>();
  const result = await runPython({
    config,
    command: 'caption',
    spec: { version: 1, model_path: config.vlm.model, images, prompt, device: 'auto' },
    specFile: path.join(workDir, 'caption-spec.json'),
    logFile: path.join(workDir, 'caption.log'),
    slot: { kind: 'cpu', index: 0 },
    signal,
    onEvent: (e) => {
      if (e.type === 'caption') captions.set(e.path, withTrigger(e.caption, ctx.triggerWord));
    },
  });
  signal.throwIfAborted();
  const failure = result.failure ?? (captions.size !== images.length ? `it captioned ${captions.size} of ${images.length} images` : null);
  if (failure) throw new CaptionError(`the local captioning model (KILN_VLM_MODEL=${config.vlm.model}) failed: ${failure}`);
  return captions;
}
