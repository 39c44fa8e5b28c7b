import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { supervise } from '../training/supervisor.js';
import { trainerEnv } from '../training/spec.js';
import { CaptionError, withTrigger, type CaptionContext } from './captions.js';

const VLM_PROMPT = 'a photo of';

/**
 * Captions a batch of dataset images with the local vision-language model named by
 * KILN_VLM_MODEL, through `python -m kiln_trainer caption`: one process loads the model once
 * for the whole dataset. Returns each image's caption, trigger word included.
 */
export async function localVlmCaptions(images: string[], ctx: CaptionContext, config: Config, workDir: string, signal: AbortSignal): Promise<Map<string, string>> {
  const specFile = path.join(workDir, 'caption-spec.json');
  const prompt = (ctx.prompt?.trim() || VLM_PROMPT).replaceAll('[trigger]', ctx.triggerWord);
  fs.writeFileSync(specFile, JSON.stringify({ version: 1, model_path: config.vlm.model, images, prompt, device: 'auto' }));
  const captions = new Map<string, string>();
  let failure: string | null = null;
  const result = await supervise({
    python: config.python,
    args: ['-m', 'kiln_trainer', 'caption', '--spec', specFile],
    env: trainerEnv(config, { kind: 'cpu', index: 0 }),
    logFile: path.join(workDir, 'caption.log'),
    signal,
    graceMs: 5000,
    stallMs: config.trainerStallSeconds * 1000,
    onEvent: (e) => {
      if (e.type === 'caption') captions.set(e.path, withTrigger(e.caption, ctx.triggerWord));
      if (e.type === 'error') failure = `${e.kind} error${e.where ? ` at ${e.where}` : ''}: ${e.message}`;
    },
  });
  signal.throwIfAborted();
  if (failure || result.exitCode !== 0 || captions.size !== images.length) {
    throw new CaptionError(`the local captioning model (KILN_VLM_MODEL=${config.vlm.model}) failed: ${failure ?? `exit code ${result.exitCode}`}`);
  }
  return captions;
}
