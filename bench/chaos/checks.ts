import fs from 'node:fs';
import path from 'node:path';
import { taskPaths } from '../../src/domain/task-folder.js';
import type { StageRunRow } from '../../src/store/db.js';
import type { Member } from './fleet.js';
import { isOurTrainer, trainerProcesses } from './trainer-processes.js';

/** What the end of the run must show; `detail` says what was seen either way. */
export interface Check {
  check: string;
  ok: boolean;
  detail: string;
}

export interface TaskRow {
  id: string;
  status: string;
  attempt: number;
  error_message: string | null;
  current_step: number;
  steps: number;
  local_model_path: string | null;
}

export type RunRow = Omit<StageRunRow, 'id'>;

/** A trainer left behind by a SIGKILLed worker, and when it was seen gone. */
export interface Orphan {
  pid: number;
  taskId: string;
  killedAt: number;
  goneAt: number | null;
  /** Filled in by the check: whether it was loading or in its training loop when orphaned. */
  phase?: 'loading' | 'training';
  /** When the next trainer of its task started, if one did. */
  nextStartedAt?: number;
}

/** How few lines of evidence a failed check quotes; the rest is in the run's logs. */
const SHOWN = 5;

function summary(problems: string[], fine: string): string {
  if (problems.length === 0) return fine;
  return `${problems.length} problem(s): ${problems.slice(0, SHOWN).join('; ')}${problems.length > SHOWN ? '; …' : ''}`;
}

/** Every task COMPLETED (last step, weights on disk), except those whose cancel the API accepted, which must be CANCELLED. */
export function checkFinalStatuses(tasks: TaskRow[], cancelled: Set<string>): Check {
  const problems = tasks
    .filter((t) => t.status !== (cancelled.has(t.id) ? 'CANCELLED' : 'COMPLETED'))
    .map((t) => `${t.id} ${t.status}${cancelled.has(t.id) ? ' (cancelled by the script)' : ''}${t.error_message ? `: ${t.error_message}` : ''}`);
  const completed = tasks.filter((t) => t.status === 'COMPLETED');
  for (const t of completed) {
    if (t.current_step !== t.steps) problems.push(`${t.id} COMPLETED at step ${t.current_step} of ${t.steps}`);
    if (!t.local_model_path || !fs.existsSync(t.local_model_path)) problems.push(`${t.id} COMPLETED without its weights file (${t.local_model_path})`);
  }
  return {
    check: 'final statuses',
    ok: problems.length === 0,
    detail: summary(problems, `${completed.length} COMPLETED at their last step with their weights file, ${tasks.length - completed.length} CANCELLED as asked`),
  };
}

/** For each task and stage, each run closed before the next began (the database's view of "once at a time"). */
export function checkRunsNeverOverlap(runs: RunRow[]): Check {
  const problems: string[] = [];
  const byJob = new Map<string, RunRow[]>();
  for (const r of runs) byJob.set(`${r.task_id} ${r.stage}`, [...(byJob.get(`${r.task_id} ${r.stage}`) ?? []), r]);
  for (const [job, own] of byJob) {
    own.sort((a, b) => Date.parse(a.started_at) - Date.parse(b.started_at));
    own.forEach((run, i) => {
      if (!run.ended_at) problems.push(`${job} attempt ${run.attempt} never closed`);
      const next = own[i + 1];
      if (next && run.ended_at && Date.parse(run.ended_at) > Date.parse(next.started_at))
        problems.push(`${job}: attempt ${run.attempt} (${run.worker_id}) ended ${run.ended_at}, after attempt ${next.attempt} started ${next.started_at}`);
    });
  }
  return { check: 'stage runs never overlap', ok: problems.length === 0, detail: summary(problems, `${runs.length} runs of ${byJob.size} stages, none overlapping`) };
}

interface EventLine {
  seq?: number;
  time: string;
  type: string;
  message?: string;
  step?: number;
  start_step?: number;
}

const SPAWN = /^\[kiln\] trainer started, pid (\d+)$/;

/**
 * The trainers' own view, from each task's logs/events.jsonl: every trainer start falls inside
 * one training run of its task, one start per run; the file has one writer at a time (sequence
 * numbers only go up) and each trainer's steps continue from where it started without another
 * trainer's steps in between; and a trainer orphaned by a killed worker was gone before the
 * next trainer of its task started.
 */
export function checkTrainerStarts(dataDir: string, tasks: TaskRow[], runs: RunRow[], orphans: Orphan[]): Check {
  const problems: string[] = [];
  let starts = 0;
  for (const task of tasks) {
    const file = taskPaths(path.join(dataDir, 'tasks', task.id)).events;
    if (!fs.existsSync(file)) continue; // cancelled before it was preprocessed
    const events: EventLine[] = [];
    fs.readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .forEach((line, i) => {
        try {
          events.push(JSON.parse(line) as EventLine);
        } catch {
          problems.push(`${task.id}: events.jsonl line ${i + 1} is not JSON (torn write?)`);
        }
      });
    for (let i = 1; i < events.length; i++) {
      if ((events[i].seq ?? 0) <= (events[i - 1].seq ?? 0)) problems.push(`${task.id}: seq ${events[i].seq} after ${events[i - 1].seq} (two writers at once)`);
    }
    const trainRuns = runs.filter((r) => r.task_id === task.id && r.stage === 'train');
    const spawns = events.filter((e) => e.type === 'log' && SPAWN.test(e.message ?? ''));
    starts += spawns.length;
    const perRun = new Map<RunRow, number>();
    for (const spawn of spawns) {
      const at = Date.parse(spawn.time);
      const run = trainRuns.find((r) => Date.parse(r.started_at) <= at && (!r.ended_at || at <= Date.parse(r.ended_at)));
      if (!run) problems.push(`${task.id}: a trainer started at ${spawn.time} outside every training run`);
      else perRun.set(run, (perRun.get(run) ?? 0) + 1);
    }
    for (const [run, n] of perRun) if (n > 1) problems.push(`${task.id}: ${n} trainers started in attempt ${run.attempt}`);
    let expected: number | null = null;
    for (const e of events) {
      if (e.type === 'started') expected = (e.start_step ?? 0) + 1;
      else if (e.type === 'step' && expected !== null) {
        if (e.step !== expected) problems.push(`${task.id}: step ${e.step} where ${expected} was next (another trainer's steps?)`);
        expected = (e.step ?? 0) + 1;
      }
    }
    for (const orphan of orphans.filter((o) => o.taskId === task.id)) {
      // Whether it had reached its training loop when its worker died: its `started` came before the kill.
      const own = events.findIndex((e) => e.type === 'log' && e.message === `[kiln] trainer started, pid ${orphan.pid}`);
      const after = events.slice(own + 1);
      const ownEnd = after.findIndex((e) => e.type === 'log' && SPAWN.test(e.message ?? ''));
      orphan.phase = (ownEnd < 0 ? after : after.slice(0, ownEnd)).some((e) => e.type === 'started' && Date.parse(e.time) <= orphan.killedAt) ? 'training' : 'loading';
      const next = spawns.find((s) => Date.parse(s.time) > orphan.killedAt);
      if (next) orphan.nextStartedAt = Date.parse(next.time);
      if (orphan.goneAt === null) problems.push(`${task.id}: orphaned trainer ${orphan.pid} never seen gone`);
      else if (next && Date.parse(next.time) < orphan.goneAt)
        problems.push(
          `${task.id}: trainer started at ${next.time}, ${((orphan.goneAt - Date.parse(next.time)) / 1000).toFixed(1)} s before orphan ${orphan.pid} (orphaned ${orphan.phase}) exited, ${((orphan.goneAt - orphan.killedAt) / 1000).toFixed(1)} s after its worker was killed`,
        );
    }
  }
  return {
    check: 'one trainer at a time (events.jsonl)',
    ok: problems.length === 0,
    detail: summary(problems, `${starts} trainer starts, each inside its own run; steps continuous`),
  };
}

/** After the fleet stopped: no trainer of this run alive, and every task's logs/trainer.pid dead. */
export function checkNoOrphans(dataDir: string, tasks: TaskRow[]): Check {
  const problems = trainerProcesses(dataDir).map((t) => `trainer ${t.pid} of ${t.taskId} still running (parent ${t.ppid})`);
  let pidFiles = 0;
  for (const task of tasks) {
    const file = taskPaths(path.join(dataDir, 'tasks', task.id)).trainerPid;
    if (!fs.existsSync(file)) continue;
    pidFiles++;
    const pid = Number(fs.readFileSync(file, 'utf8'));
    if (isOurTrainer(dataDir, pid)) problems.push(`${task.id}: trainer.pid ${pid} alive`);
  }
  return {
    check: 'no orphaned trainer',
    ok: problems.length === 0,
    detail: summary([...new Set(problems)], `no kiln_trainer process of this run alive; ${pidFiles} trainer.pid files, all dead`),
  };
}

/** Lines that mean a process died of an error rather than of the script's SIGKILL. */
// Node ends an uncaught crash with its version on a line of its own.
const CRASH_MARKERS = /Unhandled 'error' event|triggerUncaughtException|uncaughtException|unhandledRejection|FATAL ERROR|^Node\.js v\d+/m;

/** Every process the script did not kill ran until the end and exited 0 on SIGTERM; no crash in any log. */
export function checkNoCrash(members: Member[], stoppedAt: number): Check {
  const problems: string[] = [];
  for (const m of members) {
    const log = fs.readFileSync(m.process.logFile, 'utf8');
    const marker = CRASH_MARKERS.exec(log);
    if (marker) problems.push(`${m.name} (pid ${m.pid}) log: "${log.slice(marker.index, marker.index + 160).split('\n')[0]}"`);
    if (m.killedAt !== null) continue;
    if (!m.exit) problems.push(`${m.name} (pid ${m.pid}) did not exit`);
    else if (m.exit.at < stoppedAt) problems.push(`${m.name} (pid ${m.pid}) died during the run: code ${m.exit.code}, signal ${m.exit.signal}`);
    else if (m.exit.code !== 0) problems.push(`${m.name} (pid ${m.pid}) exited ${m.exit.code ?? m.exit.signal} on SIGTERM`);
  }
  const killed = members.filter((m) => m.killedAt !== null).length;
  return {
    check: 'no Kiln process crashed',
    ok: problems.length === 0,
    detail: summary(problems, `${members.length - killed} processes ran to the end and exited 0 on SIGTERM; ${killed} SIGKILLed by the script`),
  };
}
