import fs from 'node:fs';
import path from 'node:path';
import { startKiln, waitForHttp, type KilnProcess } from '../../test/helpers/processes.js';

/** One Kiln process of the run and how it ended: what the crash check reads. */
export interface Member {
  name: string;
  role: 'api' | 'worker';
  process: KilnProcess;
  pid: number;
  startedAt: number;
  /** Set when the script SIGKILLed it: its death is the experiment, not a crash. */
  killedAt: number | null;
  exit: { code: number | null; signal: NodeJS.Signals | null; at: number } | null;
}

/**
 * The fleet under test, as deployed: one `kiln serve --no-worker` and N `kiln worker`s sharing
 * a data dir and a database, each with its output in its own log file. Unlike the tests' fleet
 * it remembers every process it ever started, so that a process that died without being
 * killed is found at the end, and it can replace a worker it killed.
 */
export class ChaosFleet {
  readonly members: Member[] = [];
  private workerCount = 0;

  private constructor(
    readonly baseUrl: string,
    readonly dataDir: string,
    private readonly env: Record<string, string>,
  ) {}

  static async start(opts: { dataDir: string; databaseUrl: string; port: number; workers: number; env: Record<string, string> }): Promise<ChaosFleet> {
    const env = { KILN_DATA_DIR: opts.dataDir, KILN_DATABASE_URL: opts.databaseUrl, KILN_PORT: String(opts.port), ...opts.env };
    const fleet = new ChaosFleet(`http://127.0.0.1:${opts.port}`, opts.dataDir, env);
    fleet.track('api', 'api', startKiln(['serve', '--no-worker'], env, path.join(opts.dataDir, 'api.log')));
    await waitForHttp(`${fleet.baseUrl}/readyz`);
    for (let i = 0; i < opts.workers; i++) fleet.startWorker();
    return fleet;
  }

  private track(name: string, role: Member['role'], process: KilnProcess): Member {
    const member: Member = { name, role, process, pid: process.child.pid!, startedAt: Date.now(), killedAt: null, exit: null };
    process.child.on('exit', (code, signal) => (member.exit = { code, signal, at: Date.now() }));
    this.members.push(member);
    return member;
  }

  startWorker(): Member {
    const name = `worker-${this.workerCount++}`;
    const process = startKiln(['worker', '--cpu-slots', '1', '--preprocess', '1'], this.env, path.join(this.dataDir, `${name}.log`));
    return this.track(name, 'worker', process);
  }

  get api(): Member {
    return this.members[0];
  }

  /** The workers still running. */
  get workers(): Member[] {
    return this.members.filter((m) => m.role === 'worker' && m.exit === null);
  }

  /** The member whose worker id (host:pid:suffix, as in lease_owner) this is. */
  byWorkerId(workerId: string): Member | undefined {
    return this.members.find((m) => workerId.includes(`:${m.pid}:`));
  }

  /**
   * Resolves once a worker has said it is ready, or has exited. A worker SIGTERMed while it is
   * still loading has no handler yet and dies of the signal, which would read as a crash.
   */
  async ready(member: Member, timeoutMs = 60_000): Promise<void> {
    for (const until = Date.now() + timeoutMs; Date.now() < until && member.exit === null; await new Promise((r) => setTimeout(r, 100))) {
      if (fs.readFileSync(member.process.logFile, 'utf8').includes('"msg":"worker ready"')) return;
    }
  }

  /** SIGKILL: no shutdown hook runs, the leases it holds are left to expire. */
  async kill(member: Member): Promise<void> {
    member.killedAt = Date.now();
    await member.process.stop('SIGKILL');
  }

  /** SIGTERM to every process still running, workers first; the API last, so it serves until the end. */
  async stop(): Promise<void> {
    await Promise.all(this.workers.map((m) => this.ready(m)));
    await Promise.all(this.workers.map((m) => stopWithin(m, STOP_PATIENCE_MS)));
    if (this.api.exit === null) await stopWithin(this.api, STOP_PATIENCE_MS);
  }
}

/** A worker with nothing running stops in about a second; one that takes this long is hung. */
const STOP_PATIENCE_MS = 60_000;

/** SIGTERM, then SIGKILL if it has not gone in time: its exit then reads as SIGKILL, which the crash check reports. */
async function stopWithin(member: Member, ms: number): Promise<void> {
  const timer = setTimeout(() => member.process.child.kill('SIGKILL'), ms);
  await member.process.stop('SIGTERM');
  clearTimeout(timer);
}
