import { useEffect, useState } from 'preact/hooks';
import { get } from '../api';
import { duration, when } from '../format';

interface StageRun {
  stage: string;
  attempt: number;
  slot: string | null;
  worker_id: string;
  started_at: string;
  ended_at: string | null;
  seconds: number | null;
  outcome: string | null;
}

/** Who ran each attempt of each stage, on what, for how long, and how it ended: where a slow or retried task spent its time. */
export function Runs({ id, status }: { id: string; status: string }) {
  const [runs, setRuns] = useState<StageRun[] | null>(null);
  useEffect(() => {
    void get<StageRun[]>(`/api/v1/training/${id}/runs`).then(setRuns);
  }, [id, status]);
  if (!runs) return <div id="runs" />;
  if (runs.length === 0)
    return (
      <p id="runs" class="muted">
        No run yet: the task waits for a worker.
      </p>
    );
  return (
    <div id="runs" class="table-wrap">
      <table>
        <thead>
          <tr>
            <th scope="col">Stage</th>
            <th scope="col">Attempt</th>
            <th scope="col">Slot</th>
            <th scope="col">Worker</th>
            <th scope="col">Started</th>
            <th scope="col">Took</th>
            <th scope="col">Outcome</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr key={`${r.stage}-${r.attempt}-${r.started_at}`}>
              <td>{r.stage}</td>
              <td>{r.attempt}</td>
              <td>{r.slot ?? '–'}</td>
              <td class="small">{r.worker_id}</td>
              <td class="small">{when(r.started_at)}</td>
              <td>{r.seconds === null ? 'running' : duration(r.seconds)}</td>
              <td>{r.outcome ?? '–'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
