import path from 'node:path';
import type { TrainingTask } from '../../domain/schemas/training.js';
import type { Command } from '../commands.js';
import { downloadSamples, downloadWeights, listArtifacts, unusedSources } from './artifacts.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, KilnClient, numberOption, runClient, UsageError } from './http.js';
import { IMAGE_EXTENSIONS_TEXT, resolveSources, uploadFiles } from './sources.js';
import { watchTask } from './watch.js';

/** Exit code of `train --wait` when the task was cancelled (1 is kept for failures). */
export const EXIT_CANCELLED = 3;

const usage = `Usage: kiln train <folder|image|zip|url>... --trigger WORD [options]

Uploads the images, creates a training task and prints its id. A folder gives its images
(${IMAGE_EXTENSIONS_TEXT});
an image or a .zip goes as it is; http(s) URLs go to the server as they are.

  --trigger WORD        trigger word (required)
  --steps N             training steps (server default 1000)
  --rank N              LoRA rank (default 16)
  --lr X                learning rate (default 0.0001)
  --base MODEL          base model path or id (default black-forest-labs/FLUX.1-dev)
  --type LORA|FULL      training type (default LORA)
  --entity PRODUCT|SUBJECT|STYLE   what the images show (default PRODUCT)
  --entity-id UUID      your id of that product or person (kiln list --entity, kiln erase)
  --sample "PROMPT"     a sample prompt, [trigger] is replaced; repeat for several
  --sample-every N      sample every N steps (default 250)
  --save-every N        checkpoint every N steps (default 2000)
  --caption STRATEGY    trigger_only, template or provided (provided reads .txt files in a .zip)
  --caption-prompt TEXT the template or captioning prompt
  --continue TASK_ID    start from that COMPLETED task's LoRA (same base model and rank)
  --wait                follow the task, then download its weights (exit 1 failed, ${EXIT_CANCELLED} cancelled)
  --out DIR             where --wait saves the weights (default ./kiln-output/<task-id>/)
${CONNECTION_USAGE}`;

/** The create body: only the flags given, so the server's defaults apply to the rest. */
function createBody(values: Record<string, unknown>, sourceImages: string[]): Record<string, unknown> {
  const upper = (name: string) => (values[name] as string | undefined)?.toUpperCase();
  const samples = values.sample as string[] | undefined;
  const body: Record<string, unknown> = {
    trigger_word: values.trigger,
    source_images: sourceImages,
    steps: numberOption(values, 'steps'),
    rank: numberOption(values, 'rank'),
    learning_rate: numberOption(values, 'lr'),
    base_model_path: values.base,
    training_type: upper('type'),
    entity_type: upper('entity'),
    entity_id: values['entity-id'],
    sample_prompts: samples?.length ? samples : undefined,
    sample_every: numberOption(values, 'sample-every'),
    save_every: numberOption(values, 'save-every'),
    preprocessing_captioning_strategy: values.caption,
    preprocessing_captioning_prompt: values['caption-prompt'],
    init_lora_task_id: values.continue,
  };
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
}

export const trainCommand: Command = {
  usage,
  options: {
    trigger: { type: 'string' },
    steps: { type: 'string' },
    rank: { type: 'string' },
    lr: { type: 'string' },
    base: { type: 'string' },
    type: { type: 'string' },
    entity: { type: 'string' },
    'entity-id': { type: 'string' },
    sample: { type: 'string', multiple: true },
    'sample-every': { type: 'string' },
    'save-every': { type: 'string' },
    caption: { type: 'string' },
    'caption-prompt': { type: 'string' },
    continue: { type: 'string' },
    wait: { type: 'boolean', default: false },
    out: { type: 'string' },
    ...CONNECTION_OPTIONS,
  },
  run: (values, positionals) =>
    runClient('train', usage, async () => {
      if (typeof values.trigger !== 'string') throw new UsageError('--trigger is required');
      if (positionals.length === 0) throw new UsageError('give at least one folder, image, .zip or URL');
      const sources = resolveSources(positionals);
      // Check the flags before spending time on uploads.
      createBody(values, []);
      for (const note of sources.notes) console.error(`note: ${note}`);
      const client = KilnClient.fromOptions(values);

      if (sources.files.length) console.error(`uploading ${sources.files.length} file(s) to ${client.baseUrl}`);
      const references = await uploadFiles(client, sources.files);
      const task = await client.createOnce<TrainingTask>('/api/v1/training/', createBody(values, [...references, ...sources.urls]));
      console.log(task.id);
      if (!values.wait) return 0;

      const final = await watchTask(client, task.id);
      if (final.status === 'FAILED') {
        console.error(`task ${task.id} failed: ${final.error_message ?? 'no error message'}`);
        return 1;
      }
      if (final.status === 'CANCELLED') {
        console.error(`task ${task.id} was cancelled`);
        return EXIT_CANCELLED;
      }
      // A failure's message lists what was left out already; a success would not say it.
      const artifacts = await listArtifacts(client, task.id);
      const unused = await unusedSources(client, task.id, artifacts);
      if (unused.length) console.error([`not trained on (${unused.length}):`, ...unused.map((line) => `  ${line}`)].join('\n'));
      const outDir = (values.out as string | undefined) ?? path.join('kiln-output', task.id);
      const saved = await downloadWeights(client, task.id, artifacts, final.training_type, outDir);
      const samples = await downloadSamples(client, task.id, artifacts, outDir);
      if (samples.length) {
        // Where to see what training did: step 0 is the base model before any step.
        console.error(`samples: ${path.resolve(outDir, 'samples')} (step_0_* is the base model, step_<n>_* after n steps)`);
        console.error(`dashboard: ${client.baseUrl}/tasks/${task.id}`);
      }
      // A LoRA is one file; a FULL fine-tune is a folder, which is what to point a loader at.
      console.log(final.training_type === 'FULL' ? path.resolve(outDir) : saved.join('\n'));
      return 0;
    }),
};
