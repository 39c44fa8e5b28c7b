import { useEffect, useState } from 'preact/hooks';
import type { Artifact } from '../../../src/domain/schemas/artifacts';
import { entryLabel, type ManifestEntry } from '../../../src/domain/schemas/manifest';
import { get } from '../api';
import { bytes, when } from '../format';

// Each artifact has a signed `url`: it works in `<img>` and as a download without the bearer header, for an hour.
export type { Artifact };

const SAMPLE_NAME = /^step_(\d+)_(\d+)\.\w+$/;

/** Samples grouped by the step that drew them, newest step first, so step 250 sits beside step 500. */
/** What a sample event said of one sample image. */
export interface SampleInfo {
  prompt: string;
  /** Colour-histogram L1 distance to the training images: 0 the same colours, 2 none shared. */
  distance: number | null;
}

export function Samples({ artifacts, info }: { artifacts: Artifact[]; info: Record<string, SampleInfo> }) {
  const byStep = new Map<number, { artifact: Artifact; index: number; name: string }[]>();
  for (const artifact of artifacts.filter((a) => a.kind === 'sample')) {
    const name = artifact.path.split('/').pop()!;
    const m = SAMPLE_NAME.exec(name);
    const step = m ? Number(m[1]) : 0;
    byStep.set(step, [...(byStep.get(step) ?? []), { artifact, index: m ? Number(m[2]) : 0, name }]);
  }
  if (byStep.size === 0) return <p class="muted">No samples yet.</p>;
  return (
    <div id="samples" class="samples">
      {[...byStep.entries()]
        .sort(([a], [b]) => b - a)
        .map(([step, items]) => (
          <section data-step={step} key={step}>
            <h3>{step === 0 ? 'Step 0: the base model, before training' : `Step ${step}`}</h3>
            <div class="gallery">
              {items
                .sort((a, b) => a.index - b.index)
                .map(({ artifact, name }) => (
                  <figure key={artifact.path}>
                    <a href={artifact.url} target="_blank" rel="noopener">
                      <img src={artifact.url} alt={info[name] ? `Sample at step ${step}: ${info[name].prompt}` : `Sample at step ${step}`} loading="lazy" />
                    </a>
                    <figcaption>
                      {info[name]?.prompt ?? name}
                      {info[name]?.distance != null && (
                        <span class="muted small" title="Colour-histogram L1 distance to the training photos: 0 the same colours, 2 none shared">
                          {' '}
                          · colours {info[name].distance.toFixed(2)} from the photos
                        </span>
                      )}
                    </figcaption>
                  </figure>
                ))}
            </div>
          </section>
        ))}
    </div>
  );
}

const KIND_ORDER = ['weights', 'checkpoint', 'sample', 'manifest', 'dataset', 'log'];

/** Every file the task made, the final weights first, each a signed download link. */
export function Artifacts({ artifacts }: { artifacts: Artifact[] }) {
  const sorted = [...artifacts].sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || a.path.localeCompare(b.path));
  if (sorted.length === 0) return <p class="muted">Nothing yet.</p>;
  return (
    <ul id="artifacts" class="artifacts">
      {sorted.map((a) => (
        <li key={a.path} class={a.path === 'output/lora.safetensors' ? 'final' : undefined}>
          <a href={a.url} download={a.path.split('/').pop()} data-path={a.path}>
            {a.path}
          </a>
          <span class="muted small">
            {' '}
            {a.kind}, {bytes(a.size)}
          </span>
        </li>
      ))}
    </ul>
  );
}

/** What preprocessing made of each source: the images trained on, and why the others were not. */
export function Manifest({ artifacts }: { artifacts: Artifact[] }) {
  const manifest = artifacts.find((a) => a.path === 'dataset/manifest.json');
  const [entries, setEntries] = useState<ManifestEntry[] | null>(null);
  useEffect(() => {
    if (!manifest) return;
    // The signed link needs no header; the manifest is read once it exists.
    void fetch(manifest.url)
      .then((r) => r.json() as Promise<{ entries: ManifestEntry[] }>)
      .then((m) => setEntries(m.entries));
  }, [manifest?.sha256]);
  if (!manifest) return <p class="muted">Not prepared yet.</p>;
  if (!entries) return <p class="muted">Loading…</p>;
  const image = (file: string) => artifacts.find((a) => a.path === `dataset/${file}`);
  return (
    <ul id="manifest" class="manifest">
      {entries.map((e) => {
        const out = e.outputs[0] ? image(e.outputs[0].file) : undefined;
        const name = entryLabel(e);
        return (
          <li key={name} class={e.status}>
            {out ? <img src={out.url} alt={`Prepared from ${name}`} loading="lazy" /> : <span class="thumb-missing" aria-hidden="true" />}
            <div>
              <strong>{e.status}</strong> <span class="small">{name}</span>
              {e.width && e.height && (
                <span class="muted small">
                  {' '}
                  {e.width}×{e.height}
                </span>
              )}
              {e.reason && <p class="error small">{e.reason}</p>}
              {e.caption && <p class="muted small">{e.caption}</p>}
            </div>
          </li>
        );
      })}
    </ul>
  );
}

const TAIL_BYTES = 16 * 1024;

/** The end of the trainer's log, followed while the task runs. */
export function LogTail({ id, running }: { id: string; running: boolean }) {
  const [text, setText] = useState('');
  useEffect(() => {
    let offset = -1;
    let stopped = false;
    const read = async () => {
      if (offset < 0) {
        const first = await get<{ size: number; next_offset: number; text: string }>(`/api/v1/training/${id}/logs`);
        offset = first.size > TAIL_BYTES ? first.size - TAIL_BYTES : 0;
        if (offset === 0) {
          offset = first.next_offset;
          setText(first.text);
          return;
        }
      }
      const chunk = await get<{ next_offset: number; text: string }>(`/api/v1/training/${id}/logs?offset=${offset}`);
      offset = chunk.next_offset;
      if (!stopped && chunk.text) setText((t) => (t + chunk.text).slice(-TAIL_BYTES));
    };
    void read().catch(() => undefined);
    const timer = running ? setInterval(() => void read().catch(() => undefined), 2000) : undefined;
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [id, running]);
  return (
    <pre id="log-tail" class="log" tabIndex={0} aria-label="Trainer log, last 16 KiB">
      {text || 'No log yet.'}
    </pre>
  );
}

interface Delivery {
  id: string;
  event_type: string;
  url: string;
  status: string;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
}

export function Webhooks({ id, status }: { id: string; status: string }) {
  const [deliveries, setDeliveries] = useState<Delivery[] | null>(null);
  useEffect(() => {
    void get<Delivery[]>(`/api/v1/training/${id}/webhooks`).then(setDeliveries);
  }, [id, status]);
  if (!deliveries) return <div id="webhooks" />;
  if (deliveries.length === 0)
    return (
      <p id="webhooks" class="muted">
        No webhook deliveries (the task has no webhook_url, or nothing to announce yet).
      </p>
    );
  return (
    <div id="webhooks" class="table-wrap">
      <table>
        <thead>
          <tr>
            <th scope="col">Event</th>
            <th scope="col">Status</th>
            <th scope="col">Attempts</th>
            <th scope="col">Last answer</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {deliveries.map((d) => (
            <tr key={d.id}>
              <td>{d.event_type}</td>
              <td>{d.status}</td>
              <td>{d.attempts}</td>
              <td class="small">{d.last_status_code ?? d.last_error ?? '–'}</td>
              <td class="small">{when(d.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
