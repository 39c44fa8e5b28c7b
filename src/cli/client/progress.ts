/** What the progress line shows; each field is the newest value seen from the server. */
export interface ProgressState {
  status: string;
  step: number;
  total: number;
  progress: number;
  etaSeconds: number | null;
  loss: number | null;
  /** Jobs that start before this one while it waits (GET /training/{id}/queue); null once it runs. */
  ahead: number | null;
}

const BAR_WIDTH = 24;
/** How often a non-TTY (a log file, CI) gets a line when only the step moved. */
const PLAIN_EVERY_MS = 5000;

export function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** The status, and while the task waits, how many jobs are ahead of it. */
function statusLabel(state: ProgressState): string {
  return state.ahead === null ? state.status : `${state.status}, ${state.ahead} ahead`;
}

export function progressLine(state: ProgressState, withBar: boolean): string {
  const fraction = state.total > 0 ? Math.min(1, state.step / state.total) : state.progress / 100;
  const filled = Math.round(fraction * BAR_WIDTH);
  const bar = withBar ? ` [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]` : '';
  const loss = state.loss === null ? '' : `  loss ${state.loss.toFixed(4)}`;
  return `${statusLabel(state).padEnd(13)}${bar} ${state.step}/${state.total}${loss}  ETA ${formatEta(state.etaSeconds)}`;
}

/**
 * Renders training progress on stderr (stdout stays for results a script reads): one line
 * redrawn in place on a terminal; otherwise a line per change of status or queue place, and
 * every few seconds while the step moves.
 */
export class ProgressRenderer {
  private state: ProgressState = { status: 'PENDING', step: 0, total: 0, progress: 0, etaSeconds: null, loss: null, ahead: null };
  private lastPlain = { status: '', at: 0, step: -1 };
  private drawn = false;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  private get tty(): boolean {
    return Boolean(this.stream.isTTY);
  }

  update(change: Partial<ProgressState>): void {
    this.state = { ...this.state, ...change };
    if (this.tty) {
      this.stream.write(`\r\x1b[K${progressLine(this.state, true)}`);
      this.drawn = true;
      return;
    }
    const now = Date.now();
    const label = statusLabel(this.state);
    const statusChanged = label !== this.lastPlain.status;
    const due = now - this.lastPlain.at >= PLAIN_EVERY_MS && this.state.step !== this.lastPlain.step;
    if (!statusChanged && !due) return;
    this.lastPlain = { status: label, at: now, step: this.state.step };
    this.stream.write(`${progressLine(this.state, false)}\n`);
  }

  /** Ends the redrawn line so whatever is printed next starts on its own. */
  finish(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}
