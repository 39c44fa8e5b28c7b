import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './paths.js';

export interface MachineInfo {
  date: string;
  cpu: string;
  cores: number;
  memory_gb: number;
  os: string;
  node: string;
  python: string;
  postgres: string;
}

/** CPU model as /proc/cpuinfo names it (os.cpus() is empty in some containers). */
function cpuModel(): string {
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^model name\s*:\s*(.+)$/m.exec(info);
    if (m) return m[1].trim();
  } catch {
    // not Linux: fall through
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

function versionOf(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return 'n/a';
  }
}

/** What a reader needs to compare numbers across runs: hardware, runtimes, when. */
export function describeMachine(): MachineInfo {
  return {
    date: new Date().toISOString(),
    cpu: cpuModel(),
    cores: os.availableParallelism(),
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    python: versionOf(path.join(REPO_ROOT, '.venv/bin/python'), ['--version']),
    postgres: versionOf('psql', ['--version']),
  };
}

export function formatMachine(m: MachineInfo = describeMachine()): string {
  return `${m.date} | ${m.cpu} | ${m.cores} cores | ${m.memory_gb} GB | ${m.os} | node ${m.node} | ${m.python} | ${m.postgres}`;
}
