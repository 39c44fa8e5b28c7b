import { useEffect, useState } from 'preact/hooks';
import type { TrainingTask } from '../../../src/domain/schemas/training';
import { api, ApiError, get } from '../api';
import { Progress, StatusBadge } from '../components/status';
import { duration, PRIORITIES, when } from '../format';
import { markReady } from '../ready';
import { EraseEntity } from '../components/erase-entity';

/** What a row shows: the list is read with `fields=`, so a page of 20 is a few kilobytes, not 64 KiB of logs per task. */
const FIELDS = [
  'id',
  'created_at',
  'origin_tenant_id',
  'training_type',
  'entity_type',
  'entity_id',
  'status',
  'progress',
  'current_step',
  'total_steps',
  'eta_seconds',
  'trigger_word',
  'priority',
] as const;
type Row = Pick<TrainingTask, (typeof FIELDS)[number]>;

const STATUSES = ['PENDING', 'PREPROCESSING', 'QUEUED', 'TRAINING', 'COMPLETED', 'FAILED', 'CANCELLED'];
const PAGE = 20;
const UUID = /^[0-9a-f-]{36}$/i;
const REFRESH_MS = 2000;

/** A free-text filter of the list. */
function TextFilter(props: { label: string; name: string; value: string; placeholder: string; onInput(value: string): void }) {
  return (
    <label>
      {props.label}
      <input name={props.name} value={props.value} placeholder={props.placeholder} onInput={(e) => props.onInput(e.currentTarget.value)} />
    </label>
  );
}

export function TaskList({ admin }: { admin: boolean }) {
  const params = new URLSearchParams(location.search);
  const [status, setStatus] = useState(params.get('status') ?? '');
  const [entity, setEntity] = useState(params.get('entity_id') ?? '');
  const [tenant, setTenant] = useState(params.get('tenant_id') ?? '');
  const [skip, setSkip] = useState(Number(params.get('skip') ?? 0) || 0);
  const [rows, setRows] = useState<Row[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const query = new URLSearchParams({ fields: FIELDS.join(','), limit: String(PAGE + 1), skip: String(skip) });
    if (status) query.set('status', status);
    if (UUID.test(entity.trim())) query.set('entity_id', entity.trim());
    if (tenant.trim()) query.set('tenant_id', tenant.trim());
    // Filters and paging live in the address, so a view can be bookmarked and shared.
    const shown = new URLSearchParams();
    if (status) shown.set('status', status);
    if (entity) shown.set('entity_id', entity);
    if (tenant) shown.set('tenant_id', tenant);
    if (skip) shown.set('skip', String(skip));
    history.replaceState(null, '', `/${shown.size ? `?${shown}` : ''}`);
    let stopped = false;
    const load = async () => {
      try {
        const page = await get<Row[]>(`/api/v1/training/?${query}`);
        if (stopped) return;
        setRows(page);
        setError(null);
        markReady('list', true);
      } catch (err) {
        if (!stopped) setError((err as Error).message);
      }
    };
    markReady('list', false);
    void load();
    const timer = setInterval(() => void load(), REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [status, entity, tenant, skip]);

  // A changed filter reads the list again from its first page.
  const fromFirstPage = (set: (value: string) => void) => (value: string) => {
    set(value);
    setSkip(0);
  };

  const setPriority = async (id: string, priority: number) => {
    try {
      const task = await api<TrainingTask>('PATCH', `/api/v1/training/${id}/priority`, { priority });
      setRows((current) => current?.map((r) => (r.id === id ? { ...r, priority: task.priority } : r)) ?? null);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };

  const shown = rows?.slice(0, PAGE) ?? [];
  return (
    <main>
      <div class="title-row">
        <h1>Training tasks</h1>
        <a class="button" href="/new">
          New task
        </a>
      </div>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select name="status" value={status} onChange={(e) => fromFirstPage(setStatus)(e.currentTarget.value)}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
        <TextFilter label="Entity id" name="entity_id" value={entity} placeholder="a UUID" onInput={fromFirstPage(setEntity)} />
        {admin && <TextFilter label="Tenant" name="tenant_id" value={tenant} placeholder="every tenant" onInput={fromFirstPage(setTenant)} />}
      </form>
      {UUID.test(entity.trim()) && <EraseEntity key={entity.trim()} entityId={entity.trim()} />}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {rows && shown.length === 0 && <p class="muted">No tasks{status || entity || tenant ? ' match these filters' : ' yet: start one with New task'}.</p>}
      {shown.length > 0 && (
        <div class="table-wrap">
          <table id="task-list">
            <thead>
              <tr>
                <th scope="col">Trigger word</th>
                <th scope="col">Status</th>
                <th scope="col">Progress</th>
                <th scope="col">Step</th>
                <th scope="col">ETA</th>
                <th scope="col">Entity</th>
                <th scope="col">Created</th>
                <th scope="col">Priority</th>
                {admin && <th scope="col">Tenant</th>}
              </tr>
            </thead>
            <tbody>
              {shown.map((t) => (
                <tr data-task-id={t.id} key={t.id}>
                  <td>
                    <a href={`/tasks/${t.id}`}>{t.trigger_word}</a>
                    <span class="muted small"> {t.training_type}</span>
                  </td>
                  <td class="status">
                    <StatusBadge status={t.status} />
                  </td>
                  <td>
                    <Progress value={t.progress} />
                  </td>
                  <td>
                    {t.current_step}/{t.total_steps}
                  </td>
                  <td>{t.status === 'TRAINING' ? duration(t.eta_seconds) : '–'}</td>
                  <td class="small">
                    {t.entity_type}
                    {t.entity_id && <span class="muted"> {t.entity_id.slice(0, 8)}</span>}
                  </td>
                  <td class="small">{when(t.created_at)}</td>
                  <td>
                    {admin ? (
                      <select aria-label={`Priority of ${t.trigger_word}`} value={t.priority} onChange={(e) => void setPriority(t.id, Number(e.currentTarget.value))}>
                        {PRIORITIES.map((p, i) => (
                          <option value={i}>{p}</option>
                        ))}
                      </select>
                    ) : (
                      PRIORITIES[t.priority]
                    )}
                  </td>
                  {admin && <td class="small">{t.origin_tenant_id ?? '–'}</td>}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={skip === 0} onClick={() => setSkip(Math.max(0, skip - PAGE))}>
          Newer
        </button>
        <span class="muted">{rows && shown.length > 0 ? `${skip + 1}–${skip + shown.length}` : ''}</span>
        <button type="button" disabled={!rows || rows.length <= PAGE} onClick={() => setSkip(skip + PAGE)}>
          Older
        </button>
      </nav>
    </main>
  );
}
