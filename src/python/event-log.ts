import fs from 'node:fs';

/**
 * A job's event stream on disk (a task's `logs/events.jsonl`, a generation's `events.jsonl`):
 * every event of its Python child with a sequence number and time. The SSE endpoints tail it,
 * so API and worker need share only the data dir, as they do in fleet mode.
 */
export class EventLog {
  private seq: number;
  // One open stream rather than a sync open-write-close per event: a tiny model emits
  // dozens of steps a second, and the trainer shares the CPU with this process.
  private readonly out: fs.WriteStream;

  constructor(file: string) {
    this.seq = countLines(file);
    this.out = fs.createWriteStream(file, { flags: 'a' });
  }

  append(event: object): void {
    this.seq += 1;
    this.out.write(JSON.stringify({ seq: this.seq, time: new Date().toISOString(), ...event }) + '\n');
  }

  /** Resolves once every event appended so far is in the file. */
  close(): Promise<void> {
    return new Promise((resolve) => this.out.end(resolve));
  }
}

function countLines(file: string): number {
  try {
    const text = fs.readFileSync(file, 'utf8');
    let n = 0;
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
    return n;
  } catch {
    return 0;
  }
}

/** Reads the events after byte `offset`; returns them and the offset to continue from. */
export function readEventsFrom(file: string, offset: number): { events: Record<string, unknown>[]; offset: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return { events: [], offset };
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size <= offset) return { events: [], offset };
    const buf = Buffer.alloc(size - offset);
    fs.readSync(fd, buf, 0, buf.length, offset);
    const text = buf.toString('utf8');
    const end = text.lastIndexOf('\n');
    if (end < 0) return { events: [], offset };
    const events = text
      .slice(0, end)
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    return { events, offset: offset + Buffer.byteLength(text.slice(0, end + 1)) };
  } finally {
    fs.closeSync(fd);
  }
}
