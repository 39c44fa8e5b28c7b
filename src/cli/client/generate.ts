import path from 'node:path';
import type { Generation } from '../../domain/schemas/generations.js';
import type { Command } from '../commands.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, KilnClient, numberOption, runClient, UsageError } from './http.js';
import type { QueuePlace } from '../../domain/schemas/queue.js';
import { plural } from '../../util/words.js';

const POLL_MS = 1000;
const FINISHED = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);

const usage = `Usage: kiln generate --prompt "..." [--lora TASK_ID[:SCALE]]... [options]

Generates images, with the LoRAs of completed tasks, and downloads them.

  --prompt TEXT          the prompt; [trigger] is replaced by the first LoRA's trigger word
  --lora ID[:SCALE]      a completed task's LoRA, scale default 1; repeat for several
  --base MODEL           base model (default: the first LoRA's)
  --width N --height N   size, multiples of 16
  --steps N              denoising steps
  --seed N               seed, for repeatable images
  --num N                number of images (1-8)
  --out DIR              where to save them (default ./kiln-output/generations/<id>/)
${CONNECTION_USAGE}`;

export function parseLora(spec: string): { training_task_id: string; scale?: number } {
  const [id, scale, ...extra] = spec.split(':');
  if (!id || extra.length) throw new UsageError(`--lora wants TASK_ID or TASK_ID:SCALE, got "${spec}"`);
  if (scale === undefined) return { training_task_id: id };
  const n = Number(scale);
  if (scale.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--lora ${spec}: the scale is not a number`);
  return { training_task_id: id, scale: n };
}

export const generateCommand: Command = {
  usage,
  options: {
    prompt: { type: 'string' },
    lora: { type: 'string', multiple: true },
    base: { type: 'string' },
    width: { type: 'string' },
    height: { type: 'string' },
    steps: { type: 'string' },
    seed: { type: 'string' },
    num: { type: 'string' },
    out: { type: 'string' },
    ...CONNECTION_OPTIONS,
  },
  run: (values) =>
    runClient('generate', usage, async () => {
      if (typeof values.prompt !== 'string') throw new UsageError('--prompt is required');
      const body = Object.fromEntries(
        Object.entries({
          prompt: values.prompt,
          loras: ((values.lora as string[] | undefined) ?? []).map(parseLora),
          base_model_path: values.base,
          width: numberOption(values, 'width'),
          height: numberOption(values, 'height'),
          steps: numberOption(values, 'steps'),
          seed: numberOption(values, 'seed'),
          num_images: numberOption(values, 'num'),
        }).filter(([, v]) => v !== undefined),
      );
      const client = KilnClient.fromOptions(values);
      let generation = await client.createOnce<Generation>('/api/v1/generations/', body);
      console.error(`generation ${generation.id} queued`);
      let ahead: number | null = null;
      while (!FINISHED.has(generation.status)) {
        if (generation.status === 'PENDING') {
          const { position } = await client.json<QueuePlace>('GET', `/api/v1/generations/${generation.id}/queue`);
          if (position !== null && position !== ahead && position > 0) console.error(`generation ${generation.id}: ${plural(position, 'generation')} ahead in the queue`);
          ahead = position;
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
        generation = await client.json<Generation>('GET', `/api/v1/generations/${generation.id}`);
      }
      if (generation.status !== 'COMPLETED') {
        console.error(`generation ${generation.id} ${generation.status.toLowerCase()}: ${generation.error_message ?? 'no error message'}`);
        return 1;
      }
      const outDir = (values.out as string | undefined) ?? path.join('kiln-output', 'generations', generation.id);
      // The image URLs are absolute, under the API, and need the same token.
      for (const url of generation.images) {
        const dest = path.join(outDir, path.basename(new URL(url).pathname));
        await client.download(url, dest);
        console.log(dest);
      }
      return 0;
    }),
};
