import { useEffect, useState } from 'preact/hooks';
import type { Generation } from '../../../src/domain/schemas/generations';
import type { QueuePlace } from '../../../src/domain/schemas/queue';
import type { TrainingTask } from '../../../src/domain/schemas/training';
import { api, ApiError, blobUrl, get } from '../api';
import { FieldError } from '../components/field-error';
import { RecentGenerations } from '../components/recent-generations';
import { StatusBadge } from '../components/status';
import { queueText, TERMINAL } from '../format';
import { markReady } from '../ready';

type Lora = Pick<TrainingTask, 'id' | 'trigger_word' | 'base_model_path' | 'completed_at'>;

/** The playground: a prompt through one or more finished LoRAs, the images shown as they are made. */
export function Generate() {
  const [loras, setLoras] = useState<Lora[] | null>(null);
  const [chosen, setChosen] = useState<Record<string, number>>({});
  const [generation, setGeneration] = useState<Generation | null>(null);
  const [images, setImages] = useState<{ url: string; name: string }[]>([]);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<string | null>(null);
  const [ended, setEnded] = useState(0);
  const [place, setPlace] = useState<QueuePlace | null>(null);

  useEffect(() => {
    markReady('generate', false);
    void get<Lora[]>('/api/v1/training/?status=COMPLETED&limit=100&fields=id,trigger_word,base_model_path,completed_at').then((list) => {
      setLoras(list);
      markReady('generate', true);
    });
  }, []);

  // Follow the generation until it is over; then fetch its images with the bearer header.
  useEffect(() => {
    if (!generation || TERMINAL.includes(generation.status)) return;
    const timer = setTimeout(() => {
      void get<Generation>(`/api/v1/generations/${generation.id}`)
        .then(async (g) => {
          setPlace(g.status === 'PENDING' ? await get<QueuePlace>(`/api/v1/generations/${g.id}/queue`) : null);
          if (g.status === 'COMPLETED') setImages(await Promise.all(g.images.map(async (u) => ({ url: await blobUrl(u), name: u.split('/').pop()! }))));
          if (TERMINAL.includes(g.status)) setEnded((n) => n + 1);
          setGeneration(g);
        })
        .catch((err: Error) => setProblem(err.message));
    }, 1000);
    return () => clearTimeout(timer);
  }, [generation]);

  const submit = async (form: FormData) => {
    setErrors({});
    setProblem(null);
    images.forEach((image) => URL.revokeObjectURL(image.url));
    setImages([]);
    const number = (name: string) => (typeof form.get(name) === 'string' && (form.get(name) as string) !== '' ? Number(form.get(name)) : undefined);
    const body = {
      prompt: typeof form.get('prompt') === 'string' ? (form.get('prompt') as string) : '',
      loras: Object.entries(chosen).map(([training_task_id, scale]) => ({ training_task_id, scale })),
      seed: number('seed'),
      num_images: number('num_images'),
      steps: number('steps'),
    };
    try {
      setGeneration(await api<Generation>('POST', '/api/v1/generations', body));
    } catch (err) {
      if (err instanceof ApiError && err.issues.length) setErrors(Object.fromEntries(err.issues.map((i) => [String(i.loc[1] ?? 'form'), i.msg])));
      else setProblem((err as Error).message);
    }
  };

  const running = generation !== null && !TERMINAL.includes(generation.status);
  return (
    <main class="narrow">
      <h1>Generate</h1>
      <form
        id="generate"
        onSubmit={(e) => {
          e.preventDefault();
          void submit(new FormData(e.currentTarget));
        }}
      >
        <div class="field">
          <label for="prompt">Prompt ([trigger] is the first LoRA's trigger word)</label>
          <textarea id="prompt" name="prompt" rows={3} required placeholder="a photo of [trigger] on a marble table" />
          <FieldError field="prompt" message={errors.prompt} />
        </div>
        <fieldset>
          <legend>LoRAs</legend>
          {loras === null && <p class="muted">Loading…</p>}
          {loras?.length === 0 && <p class="muted">No finished task yet: a LoRA appears here once its task is COMPLETED.</p>}
          {loras?.map((l) => (
            <div class="lora" key={l.id}>
              <label>
                <input
                  type="checkbox"
                  name="lora"
                  value={l.id}
                  checked={l.id in chosen}
                  onChange={(e) => {
                    const next = { ...chosen };
                    if (e.currentTarget.checked) next[l.id] = 1;
                    else delete next[l.id];
                    setChosen(next);
                  }}
                />{' '}
                {l.trigger_word} <span class="muted small">{l.id.slice(0, 8)}</span>
              </label>
              <label class="scale">
                scale <output>{(chosen[l.id] ?? 1).toFixed(2)}</output>
                <input
                  type="range"
                  min={-2}
                  max={2}
                  step={0.05}
                  value={chosen[l.id] ?? 1}
                  disabled={!(l.id in chosen)}
                  data-scale-for={l.id}
                  aria-label={`Scale of ${l.trigger_word}`}
                  onInput={(e) => setChosen({ ...chosen, [l.id]: Number(e.currentTarget.value) })}
                />
              </label>
            </div>
          ))}
          <FieldError field="loras" message={errors.loras} />
        </fieldset>
        <div class="row">
          <div class="field">
            <label for="seed">Seed</label>
            <input id="seed" name="seed" type="number" min={0} placeholder="random" />
          </div>
          <div class="field">
            <label for="num_images">Images</label>
            <input id="num_images" name="num_images" type="number" min={1} max={8} value={1} />
          </div>
          <div class="field">
            <label for="steps">Steps</label>
            <input id="steps" name="steps" type="number" min={1} max={100} placeholder="default" />
          </div>
        </div>
        {problem && (
          <p class="error" role="alert">
            {problem}
          </p>
        )}
        <button type="submit" disabled={running}>
          {running ? 'Generating…' : 'Generate'}
        </button>
      </form>
      {generation && (
        <p id="generation-status" aria-live="polite">
          <StatusBadge status={generation.status} /> {generation.error_message ?? ''}
          <span id="generation-queue">{generation.status === 'PENDING' ? queueText(place) : ''}</span>
        </p>
      )}
      <div id="images" class="gallery">
        {images.map((img) => (
          <figure key={img.url}>
            <img src={img.url} alt={`Generated: ${generation?.prompt ?? ''}`} />
            <figcaption>
              <a href={img.url} download={img.name}>
                Download {img.name}
              </a>
            </figcaption>
          </figure>
        ))}
      </div>
      <RecentGenerations version={ended} />
    </main>
  );
}
