import { useEffect, useState } from 'preact/hooks';
import type { TrainingTask } from '../../../src/domain/schemas/training';
import { api, ApiError, upload } from '../api';
import { FieldError } from '../components/field-error';
import { bytes } from '../format';
import { markReady } from '../ready';
import { navigate } from '../router';

/** A property of TrainingTaskCreate as /openapi.json states it: the API's own defaults and bounds. */
interface Property {
  type?: string | string[];
  enum?: (string | number | null)[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  description?: string;
  title?: string;
  $ref?: string;
  anyOf?: Property[];
}

type Document = { components: { schemas: Record<string, Property & { properties?: Record<string, Property> }> } };

/** A property with its `$ref` followed and its nullable `anyOf` folded into one: what a form field needs. */
function resolve(p: Property, schemas: Document['components']['schemas']): Property {
  const { $ref, anyOf, ...own } = p;
  const target = $ref ? resolve(schemas[$ref.split('/').pop()!] ?? {}, schemas) : {};
  const branch = anyOf?.find((b) => b.type !== 'null');
  return { ...target, ...(branch ? resolve(branch, schemas) : {}), ...own };
}

type Kind = 'text' | 'number' | 'select' | 'lines' | 'checkbox';
const MAIN: [string, string, Kind][] = [
  ['trigger_word', 'Trigger word', 'text'],
  ['training_type', 'Type', 'select'],
  ['steps', 'Steps', 'number'],
  ['rank', 'LoRA rank', 'number'],
  ['learning_rate', 'Learning rate', 'number'],
  ['sample_prompts', 'Sample prompts, one per line ([trigger] is the trigger word)', 'lines'],
  ['preprocessing_captioning_strategy', 'Captions', 'select'],
];
const ADVANCED: [string, string, Kind][] = [
  ['entity_type', 'Entity type', 'select'],
  ['entity_id', 'Entity id (a UUID)', 'text'],
  ['sample_every', 'Sample every (steps)', 'number'],
  ['sample_steps', 'Sampling steps', 'number'],
  ['save_every', 'Checkpoint every (steps)', 'number'],
  ['max_step_saves_to_keep', 'Checkpoints kept', 'number'],
  ['batch_size', 'Batch size', 'number'],
  ['gradient_accumulation', 'Gradient accumulation', 'number'],
  ['optimizer', 'Optimizer', 'select'],
  ['base_model_path', 'Base model', 'text'],
  ['bypass_guidance_embedding', 'Bypass the guidance embedding', 'checkbox'],
  ['preprocessing_captioning_prompt', 'Captioning prompt', 'text'],
  ['priority', 'Priority', 'select'],
  ['webhook_url', 'Webhook URL', 'text'],
  ['init_lora_task_id', 'Continue from the LoRA of task (its id)', 'text'],
];

interface Chosen {
  file: File;
  progress: number;
}

export function NewTask() {
  const [schema, setSchema] = useState<Record<string, Property> | null>(null);
  const [files, setFiles] = useState<Chosen[]>([]);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [dragging, setDragging] = useState(false);
  // A task page's "Train more" link names the fields to start from (/new?init_lora_task_id=…&rank=…).
  const [prefill] = useState(() => Object.fromEntries(new URLSearchParams(location.search)));

  useEffect(() => {
    markReady('new', false);
    void fetch('/openapi.json')
      .then((r) => r.json() as Promise<Document>)
      .then((doc) => {
        const { schemas } = doc.components;
        const properties = Object.entries(schemas.TrainingTaskCreate.properties ?? {}).map(([name, p]) => [name, resolve(p, schemas)]);
        setSchema(Object.fromEntries(properties) as Record<string, Property>);
        markReady('new', true);
      });
  }, []);

  const add = (list: FileList | null) => list && setFiles((current) => [...current, ...Array.from(list, (file) => ({ file, progress: 0 }))]);

  const submit = async (form: HTMLFormElement) => {
    setErrors({});
    setProblem(null);
    if (files.length === 0) {
      setErrors({ source_images: 'Add at least one photo or a zip of photos.' });
      return;
    }
    const body = bodyOf(new FormData(form), schema!);
    setBusy(true);
    try {
      const references: string[] = [];
      for (const [i, chosen] of files.entries()) {
        references.push(await upload(chosen.file, (p) => setFiles((current) => current.map((c, j) => (j === i ? { ...c, progress: p } : c)))));
      }
      const task = await api<TrainingTask>('POST', '/api/v1/training/', { ...body, source_images: references });
      navigate(`/tasks/${task.id}`);
    } catch (err) {
      if (err instanceof ApiError && err.issues.length) {
        const byField: Record<string, string> = {};
        for (const issue of err.issues) byField[String(issue.loc[1] ?? 'form')] = issue.msg;
        setErrors(byField);
      } else setProblem((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  if (!schema) return <main class="muted">Loading the form…</main>;
  const field = ([name, label, kind]: [string, string, Kind]) => (
    <Field key={name} name={name} label={label} kind={kind} property={schema[name]} error={errors[name]} initial={prefill[name]} />
  );
  return (
    <main class="narrow">
      <h1>New training task</h1>
      <form
        id="new-task"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          void submit(e.currentTarget);
        }}
      >
        <label
          class={`drop-zone${dragging ? ' dragging' : ''}`}
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => {
            e.preventDefault();
            setDragging(false);
            add(e.dataTransfer?.files ?? null);
          }}
        >
          <span>Drop photos or a zip here, or choose them</span>
          <input type="file" name="files" multiple accept="image/*,.heic,.heif,.zip,application/zip" onChange={(e) => add(e.currentTarget.files)} />
        </label>
        <FieldError field="source_images" message={errors.source_images} />
        {files.length > 0 && (
          <ul class="files">
            {files.map((c) => (
              <li data-file={c.file.name} key={c.file.name}>
                <span>{c.file.name}</span> <span class="muted small">{bytes(c.file.size)}</span>
                <progress max={1} value={c.progress} aria-label={`Upload of ${c.file.name}`} />
                <button type="button" class="link" disabled={busy} onClick={() => setFiles((current) => current.filter((x) => x !== c))}>
                  remove
                </button>
              </li>
            ))}
          </ul>
        )}
        {MAIN.map(field)}
        <details id="advanced" open={ADVANCED.some(([name]) => name in prefill)}>
          <summary>Advanced (the defaults are the API's)</summary>
          {ADVANCED.map(field)}
        </details>
        {problem && (
          <p class="error" role="alert">
            {problem}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Uploading…' : 'Start training'}
        </button>
      </form>
    </main>
  );
}

function Field({ name, label, kind, property, error, initial }: { name: string; label: string; kind: Kind; property: Property | undefined; error?: string; initial?: string }) {
  const p = property ?? {};
  const def = p.default;
  const hint = p.description ?? '';
  const errorId = `${name}-error`;
  const common = { name, id: name, 'aria-invalid': error ? true : undefined, 'aria-describedby': error ? errorId : undefined };
  let control;
  if (kind === 'select') {
    const options = (p.enum ?? []).filter((v) => v !== null);
    // Without a stated default the first choice would be sent as if picked: offer the API's own instead.
    control = (
      <select {...common}>
        {def === undefined && <option value="">API default</option>}
        {options.map((v) => (
          <option value={String(v)} selected={v === def}>
            {name === 'priority' ? ['LOW', 'NORMAL', 'HIGH', 'URGENT'][Number(v)] : String(v)}
          </option>
        ))}
      </select>
    );
  } else if (kind === 'lines') control = <textarea {...common} rows={3} placeholder={Array.isArray(def) ? def.join('\n') : ''} />;
  else if (kind === 'checkbox') control = <input {...common} type="checkbox" checked={def === true} />;
  else if (kind === 'number')
    control = <input {...common} type="number" step="any" min={p.minimum} max={p.maximum} placeholder={typeof def === 'number' ? String(def) : ''} defaultValue={initial} />;
  else control = <input {...common} type="text" required={name === 'trigger_word'} placeholder={typeof def === 'string' ? def : ''} defaultValue={initial} />;
  return (
    <div class={`field ${kind}`}>
      <label for={name}>{label}</label>
      {control}
      {hint && kind !== 'checkbox' && <small class="muted">{hint}</small>}
      <FieldError field={name} message={error} id={errorId} />
    </div>
  );
}

/** The form as a TrainingTaskCreate: empty fields are left out, so the API's defaults apply. */
function bodyOf(form: FormData, schema: Record<string, Property>): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const [name, , kind] of [...MAIN, ...ADVANCED]) {
    if (kind === 'checkbox') {
      body[name] = form.get(name) === 'on';
      continue;
    }
    const raw = form.get(name);
    if (typeof raw !== 'string' || raw.trim() === '') continue;
    const types = ([] as (string | undefined)[]).concat(schema[name]?.type);
    if (kind === 'lines')
      body[name] = raw
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
    else if (kind === 'number' || types.includes('integer') || types.includes('number')) body[name] = Number(raw);
    else body[name] = raw.trim();
  }
  return body;
}
