import { useCallback, useEffect, useState } from 'preact/hooks';
import type { QueuePlace } from '../../../src/domain/schemas/queue';
import type { TrainingTask } from '../../../src/domain/schemas/training';
import { api, followEvents, get, type StreamEvent } from '../api';
import { LossChart, type LossPoint } from '../components/loss-chart';
import { Progress, StatusBadge } from '../components/status';
import { Runs } from '../components/runs';
import { Artifacts, LogTail, Manifest, Samples, Webhooks, type Artifact, type SampleInfo } from '../components/task-sections';
import { duration, PRIORITIES, queueText, TERMINAL, when } from '../format';
import { markReady } from '../ready';
import { navigate } from '../router';

type Live = Pick<TrainingTask, 'status' | 'current_step' | 'total_steps' | 'progress' | 'eta_seconds' | 'error_message'>;

/** One task: live status and loss from its event stream, and everything it has made. */
export function TaskPage({ id }: { id: string }) {
  const [task, setTask] = useState<TrainingTask | null>(null);
  const [live, setLive] = useState<Live | null>(null);
  const [place, setPlace] = useState<QueuePlace | null>(null);
  const [points, setPoints] = useState<LossPoint[]>([]);
  const [artifacts, setArtifacts] = useState<Artifact[]>([]);
  const [samples, setSamples] = useState<Record<string, SampleInfo>>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // Bumped by Retry: the task runs again, so its stream is followed again from the start.
  const [round, setRound] = useState(0);

  const loadArtifacts = useCallback(async () => setArtifacts(await get<Artifact[]>(`/api/v1/training/${id}/artifacts`)), [id]);

  useEffect(() => {
    const abort = new AbortController();
    markReady('task', false);
    const start = async () => {
      const [t, curve] = await Promise.all([get<TrainingTask>(`/api/v1/training/${id}`), get<{ points: LossPoint[] }>(`/api/v1/training/${id}/metrics`)]);
      setTask(t);
      setLive(t);
      setPoints(curve.points);
      await loadArtifacts();
      markReady('task', true);
      // New points arrive as step events; the stream replays the run from its start, so a point
      // already drawn is skipped by its step.
      const onEvent = (e: StreamEvent) => {
        const data = e.data as Record<string, unknown>;
        if (e.event === 'status') setLive((current) => ({ ...(current as Live), ...(data as Partial<Live>) }));
        else if (e.event === 'queue') setPlace(data as QueuePlace);
        else if (e.event === 'step' && typeof data.step === 'number') {
          const point = { step: data.step, loss: typeof data.loss === 'number' ? data.loss : null };
          setPoints((current) => (current.length && current[current.length - 1].step >= point.step ? current : [...current, point]));
        } else if (e.event === 'sample' && typeof data.path === 'string') {
          const name = data.path.split('/').pop()!;
          const info = { prompt: typeof data.prompt === 'string' ? data.prompt : '', distance: typeof data.histogram_l1 === 'number' ? data.histogram_l1 : null };
          setSamples((current) => ({ ...current, [name]: info }));
          void loadArtifacts();
        } else if (e.event === 'checkpoint') void loadArtifacts();
        else if (e.event === 'end') {
          void get<TrainingTask>(`/api/v1/training/${id}`).then((fresh) => {
            setTask(fresh);
            setLive(fresh);
          });
          void loadArtifacts();
        }
      };
      await followEvents(`/api/v1/training/${id}/events`, onEvent, abort.signal);
    };
    start().catch((err: Error) => {
      if (!abort.signal.aborted) {
        setError(err.message);
        markReady('task', true);
      }
    });
    return () => abort.abort();
  }, [id, loadArtifacts, round]);

  // Deletes ask once more in place, since they cannot be undone.
  const [confirming, setConfirming] = useState<'task' | 'photos' | null>(null);
  const remove = async () => {
    setBusy(true);
    try {
      await api<void>('DELETE', `/api/v1/training/${id}`);
      navigate('/');
    } catch (err) {
      setError((err as Error).message);
      setConfirming(null);
      setBusy(false);
    }
  };
  const removePhotos = async () => {
    setBusy(true);
    try {
      setTask(await api<TrainingTask>('DELETE', `/api/v1/training/${id}/photos`));
      await loadArtifacts();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setConfirming(null);
      setBusy(false);
    }
  };

  const act = async (what: 'cancel' | 'retry') => {
    setBusy(true);
    try {
      const fresh = await api<TrainingTask>('POST', `/api/v1/training/${id}/${what}`);
      setTask(fresh);
      setLive(fresh);
      if (what === 'retry') setRound((r) => r + 1);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  if (!task || !live) {
    return (
      <main>
        <p class={error ? 'error' : 'muted'} role={error ? 'alert' : undefined}>
          {error ?? 'Loading…'}
        </p>
      </main>
    );
  }

  const terminal = TERMINAL.includes(live.status);
  return (
    <main>
      <div class="title-row">
        <h1>
          {task.trigger_word} <span class="muted small">{task.training_type}</span>
        </h1>
        <div class="actions">
          {live.status === 'COMPLETED' && task.training_type === 'LORA' && (
            // The new-task form, filled in to continue this LoRA: its id, base model, rank and trigger word.
            <a
              id="train-more"
              class="button"
              href={`/new?${new URLSearchParams({ init_lora_task_id: task.id, base_model_path: task.base_model_path, rank: String(task.rank), trigger_word: task.trigger_word })}`}
            >
              Train more
            </a>
          )}
          <button type="button" id="cancel" disabled={busy || terminal} onClick={() => void act('cancel')}>
            Cancel
          </button>
          <button
            type="button"
            id="retry"
            disabled={busy || !(live.status === 'FAILED' || live.status === 'CANCELLED') || task.photos_deleted_at !== null}
            title={task.photos_deleted_at ? 'Its photos were deleted' : undefined}
            onClick={() => void act('retry')}
          >
            Retry
          </button>
          {confirming === 'task' && (
            <>
              <button type="button" id="delete-confirm" class="danger" disabled={busy} onClick={() => void remove()}>
                Delete task and all its files
              </button>
              <button type="button" id="delete-keep" disabled={busy} onClick={() => setConfirming(null)}>
                Keep
              </button>
            </>
          )}
          {confirming === 'photos' && (
            <>
              <button type="button" id="delete-photos-confirm" class="danger" disabled={busy} onClick={() => void removePhotos()}>
                Delete its photos, keep the weights
              </button>
              <button type="button" id="delete-photos-keep" disabled={busy} onClick={() => setConfirming(null)}>
                Keep
              </button>
            </>
          )}
          {confirming === null && (
            <>
              <button
                type="button"
                id="delete-photos"
                class="quiet-danger"
                disabled={busy || !terminal || task.photos_deleted_at !== null}
                title={terminal ? undefined : 'Cancel the task first'}
                onClick={() => setConfirming('photos')}
              >
                Delete photos
              </button>
              <button
                type="button"
                id="delete"
                class="quiet-danger"
                disabled={busy || !terminal}
                title={terminal ? undefined : 'Cancel the task first'}
                onClick={() => setConfirming('task')}
              >
                Delete
              </button>
            </>
          )}
        </div>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {live.status === 'FAILED' && live.error_message && (
        <div id="error-message" class="failure" role="alert">
          <strong>Failed:</strong>
          <pre>{live.error_message}</pre>
        </div>
      )}
      <section class="summary" aria-live="polite">
        <StatusBadge id="task-status" status={live.status} />
        <Progress id="progress" value={live.progress} />
        <span>
          step {live.current_step}/{live.total_steps}
        </span>
        <span id="eta">{live.status === 'TRAINING' ? `ETA ${duration(live.eta_seconds)}` : ''}</span>
        <span id="queue-place">{queueText(place)}</span>
      </section>
      <dl class="facts">
        <dt>Task</dt>
        <dd>
          <code>{task.id}</code>
        </dd>
        <dt>Entity</dt>
        <dd>
          {task.entity_type} {task.entity_id ?? ''}
        </dd>
        <dt>Created</dt>
        <dd>{when(task.created_at)}</dd>
        <dt>Priority</dt>
        <dd>{PRIORITIES[task.priority]}</dd>
        <dt>Settings</dt>
        <dd>
          {task.steps} steps, rank {task.rank}, lr {task.learning_rate}, batch {task.batch_size}, {task.optimizer}
        </dd>
        <dt>Base model</dt>
        <dd>
          <code>{task.base_model_path}</code>
        </dd>
        <dt>Photos</dt>
        <dd id="photos">{task.photos_deleted_at ? `deleted ${when(task.photos_deleted_at)}; the weights, samples and logs are kept` : 'kept'}</dd>
      </dl>
      <h2>Loss</h2>
      <LossChart points={points} />
      <h2>Samples</h2>
      <Samples artifacts={artifacts} info={samples} />
      <h2>Artifacts</h2>
      <Artifacts artifacts={artifacts} />
      <h2>Dataset</h2>
      <Manifest artifacts={artifacts} />
      <h2>Log</h2>
      <LogTail id={id} running={!terminal} />
      <h2>Runs</h2>
      <Runs id={id} status={live.status} />
      <h2>Webhooks</h2>
      <Webhooks id={id} status={live.status} />
    </main>
  );
}
