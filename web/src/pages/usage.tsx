import { useEffect, useState } from 'preact/hooks';
import type { Usage as UsageReport } from '../../../src/domain/schemas/usage';
import { get } from '../api';
import { when } from '../format';
import { markReady } from '../ready';

/** YYYY-MM of an instant, in UTC: usage periods are calendar months in UTC. */
const monthOf = (ms: number) => new Date(ms).toISOString().slice(0, 7);

/** The first instants of a month and of the next one, as the API's since and until. */
function period(month: string): { since: string; until: string } {
  const [year, m] = month.split('-').map(Number);
  return { since: new Date(Date.UTC(year, m - 1, 1)).toISOString(), until: new Date(Date.UTC(year, m, 1)).toISOString() };
}

/** Slot time by tenant, job kind and slot kind for one month: what each customer used (an admin sees every tenant). */
export function Usage() {
  const [month, setMonth] = useState(() => monthOf(Date.now()));
  const [report, setReport] = useState<UsageReport | null>(null);
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    markReady('usage', false);
    const { since, until } = period(month);
    // For the current month, until lies ahead: the API counts what ran up to now.
    get<UsageReport>(`/api/v1/usage/?${new URLSearchParams({ since, until })}`)
      .then((r) => {
        setReport(r);
        setProblem(null);
      })
      .catch((err: Error) => setProblem(err.message))
      .finally(() => markReady('usage', true));
  }, [month]);

  const gpuHours = (report?.usage ?? []).filter((l) => l.slot === 'gpu').reduce((sum, l) => sum + l.seconds / 3600, 0);
  return (
    <main>
      <h1>Usage</h1>
      <div class="field">
        <label for="usage-month">Month (UTC)</label>
        <input id="usage-month" type="month" value={month} max={monthOf(Date.now())} onChange={(e) => e.currentTarget.value && setMonth(e.currentTarget.value)} />
      </div>
      {problem && (
        <p class="error" role="alert">
          {problem}
        </p>
      )}
      {report?.allowance && (
        <p id="allowance">
          {report.allowance.used_hours.toFixed(2)} of {report.allowance.hours} training hours used this month; the allowance renews {when(report.allowance.renews_at)}
        </p>
      )}
      {report && report.usage.length === 0 && <p class="muted">Nothing ran in this period.</p>}
      {report && report.usage.length > 0 && (
        <>
          <p id="gpu-hours">
            {gpuHours.toFixed(2)} GPU hours in {month}
          </p>
          <div class="table-wrap">
            <table id="usage">
              <thead>
                <tr>
                  <th scope="col">Tenant</th>
                  <th scope="col">Job</th>
                  <th scope="col">Slot</th>
                  <th scope="col">Runs</th>
                  <th scope="col">Hours</th>
                </tr>
              </thead>
              <tbody>
                {report.usage.map((l) => (
                  <tr key={`${l.tenant_id ?? ''}-${l.job}-${l.slot}`}>
                    <td>{l.tenant_id ?? '–'}</td>
                    <td>{l.job}</td>
                    <td>{l.slot}</td>
                    <td>{l.runs}</td>
                    <td>{(l.seconds / 3600).toFixed(3)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </main>
  );
}
