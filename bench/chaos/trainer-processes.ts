import fs from 'node:fs';
import path from 'node:path';

/** A live `python -m kiln_trainer` process, and the task whose spec it was started with. */
export interface TrainerProcess {
  pid: number;
  ppid: number;
  taskId: string;
}

function read(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null; // gone between the listing and the read
  }
}

/** The trainer of this data dir that runs as `pid`, or null (not a trainer, someone else's, or gone). */
function trainerAt(tasksDir: string, pid: number): TrainerProcess | null {
  const argv = read(`/proc/${pid}/cmdline`)?.split('\0') ?? [];
  if (!argv.includes('kiln_trainer')) return null;
  const spec = argv[argv.indexOf('--spec') + 1] ?? '';
  if (!spec.startsWith(tasksDir)) return null;
  // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so count from its ')'.
  const stat = read(`/proc/${pid}/stat`);
  if (stat === null) return null;
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return { pid, ppid, taskId: spec.slice(tasksDir.length).split(path.sep)[0] };
}

const tasksDirOf = (dataDir: string) => path.join(dataDir, 'tasks') + path.sep;

/**
 * The kiln_trainer processes started for tasks under one data dir, as /proc shows them now.
 * Other people's tests on this machine run trainers too; the spec path, which lies under the
 * data dir, tells ours apart.
 */
export function trainerProcesses(dataDir: string): TrainerProcess[] {
  const tasksDir = tasksDirOf(dataDir);
  return fs
    .readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map((entry) => trainerAt(tasksDir, Number(entry)))
    .filter((t): t is TrainerProcess => t !== null);
}

/** Whether a pid is a live trainer of this data dir (a dead pid may have been reused by anything). */
export function isOurTrainer(dataDir: string, pid: number): boolean {
  return trainerAt(tasksDirOf(dataDir), pid) !== null;
}
