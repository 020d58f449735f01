import type { TransferPollResult } from '@dotmesh/rpc';
import type { ProgressTerminal } from '../io.ts';

/**
 * Progress of a push/pull/clone, fed one `GetTransfer` result per poll (polls are 1 s apart).
 *
 * - On a terminal: a `cli-progress` bar (loaded only here, on first use), redrawn in place:
 *   `pushing [=====-----] 12.00 MiB / 100.00 MiB 12% 5.20 MiB/s ETA 17s (1/3)`.
 * - Otherwise (pipes, files, `--json`): plain lines, at most one per poll and never the same
 *   line twice in a row. They follow the original client's progress bar as it came out on a
 *   non-terminal: first the bar's start (` 0 B / ? `: bytes sent / size, `?` while unknown),
 *   then `<Status> <sent> / <size> [<pct>% [ETA <t>]] <rate> (<Index>/<Total>)`, where rate is
 *   `Sent / NanosecondsElapsed` in MiB/s (`? MiB/s` before any time has passed), so a finished
 *   one-step transfer of unknown size prints `finished 0 B / ?  0.00 MiB/s (1/1)` as it did.
 */
export interface TransferProgress {
  update(poll: TransferPollResult): void;
  /** A line between updates (e.g. a poll that failed and is retried). */
  message(text: string): void;
  /** Ends the display (idempotent); call it on every path out. */
  finish(): void;
}

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;
const TIB = 1024 * GIB;

/** Bytes as the original's progress bar (cheggaaa/pb) showed them: `512 B`, `1.50 KiB`, `12.00 MiB`. */
export function formatBytes(n: number): string {
  if (n >= TIB) return `${(n / TIB).toFixed(2)} TiB`;
  if (n >= GIB) return `${(n / GIB).toFixed(2)} GiB`;
  if (n >= MIB) return `${(n / MIB).toFixed(2)} MiB`;
  if (n >= KIB) return `${(n / KIB).toFixed(2)} KiB`;
  return `${Math.max(0, Math.trunc(n))} B`;
}

/** `7s`, `2m05s`, `1h02m`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Bytes sent, capped at the size (the size is an estimate), as the original did. */
function sentOf(p: Pick<TransferPollResult, 'Sent' | 'Size'>): number {
  return p.Size > 0 ? Math.min(p.Sent, p.Size) : p.Sent;
}

/** `12.00 MiB / 100.00 MiB`, or `0 B / ?` while the size is unknown. */
export function countersText(p: Pick<TransferPollResult, 'Sent' | 'Size'>): string {
  return `${formatBytes(sentOf(p))} / ${p.Size > 0 ? formatBytes(p.Size) : '?'}`;
}

/** The original's rate: bytes sent over the time elapsed, in MiB/s. */
export function rateText(p: Pick<TransferPollResult, 'Sent' | 'NanosecondsElapsed'>): string {
  if (!(p.NanosecondsElapsed > 0)) return '? MiB/s';
  return `${(p.Sent / MIB / (p.NanosecondsElapsed / 1e9)).toFixed(2)} MiB/s`;
}

/** Seconds left at the average rate so far; undefined when unknown or done. */
export function etaSeconds(p: TransferPollResult): number | undefined {
  if (p.Status === 'finished' || p.Status === 'error') return undefined;
  if (!(p.Size > 0 && p.Sent > 0 && p.NanosecondsElapsed > 0) || p.Sent >= p.Size) return undefined;
  return (p.Size - p.Sent) / (p.Sent / (p.NanosecondsElapsed / 1e9));
}

function percent(p: Pick<TransferPollResult, 'Sent' | 'Size'>): number {
  return Math.floor((sentOf(p) / p.Size) * 100);
}

/** The first line, as the original bar's start: nothing sent yet of `Size`. */
export function startLine(size: number): string {
  return ` ${countersText({ Sent: 0, Size: size })} ${size > 0 ? '0%' : ''}`;
}

/** One plain progress line for a poll result (see the module comment). */
export function statusLine(p: TransferPollResult): string {
  let extras = '';
  if (p.Size > 0) {
    const eta = etaSeconds(p);
    extras = `${percent(p)}%${eta === undefined ? '' : ` ETA ${formatDuration(eta)}`}`;
  }
  return `${p.Status} ${countersText(p)} ${extras} ${rateText(p)} (${p.Index}/${p.Total})`;
}

class PlainProgress implements TransferProgress {
  private readonly line: (text: string) => void;
  private started = false;
  private last: string | undefined;

  constructor(line: (text: string) => void) {
    this.line = line;
  }

  update(poll: TransferPollResult): void {
    if (!this.started) {
      this.started = true;
      this.emit(startLine(poll.Size));
    }
    this.emit(statusLine(poll));
  }

  message(text: string): void {
    this.line(text);
    this.last = undefined;
  }

  finish(): void {}

  private emit(text: string): void {
    if (text === this.last) return;
    this.last = text;
    this.line(text);
  }
}

type CliProgress = typeof import('cli-progress');
type Bar = InstanceType<CliProgress['SingleBar']>;

/**
 * The terminal without the bar's cursor save/restore (ESC 7 / ESC 8, written on start and
 * stop): restoring would jump back above a message line printed meanwhile (or to a stale
 * screen row after scrolling), and the next output would overwrite the bar's last state.
 * Without them the bar ends where it was drawn and stop() moves to the next line.
 */
function withoutCursorSaves(terminal: ProgressTerminal): ProgressTerminal {
  return {
    isTTY: true,
    get columns() {
      return terminal.columns;
    },
    write(text, callback) {
      const kept = text.replace(/\x1b[78]/g, '');
      if (kept !== '') return terminal.write(kept, callback);
      callback?.();
      return true;
    },
  };
}

class BarProgress implements TransferProgress {
  private readonly terminal: ProgressTerminal;
  private readonly bar: Bar;
  private started = false;
  private finished = false;

  constructor(lib: CliProgress, terminal: ProgressTerminal) {
    this.terminal = terminal;
    this.bar = new lib.SingleBar({
      stream: withoutCursorSaves(terminal) as unknown as NodeJS.WritableStream,
      format: '{status} [{bar}] {counters} {extras}{rate} ({index}/{count})',
      barsize: 25,
      fps: 5,
      emptyOnZero: true,
      // Redraw each frame, so a message line written between updates never hides the bar.
      forceRedraw: true,
      // Trim to the terminal's width instead of switching the terminal's line wrapping off.
      linewrap: true,
      // No SIGINT handler (it would swallow Ctrl-C) and so no hidden cursor to restore.
      gracefulExit: false,
      hideCursor: false,
    });
  }

  update(p: TransferPollResult): void {
    if (this.finished) return;
    const total = Math.max(0, p.Size);
    const value = total > 0 ? sentOf(p) : 0;
    const eta = etaSeconds(p);
    const payload = {
      status: p.Status,
      counters: countersText(p),
      extras: total > 0 ? `${percent(p)}% ` : '',
      rate: `${rateText(p)}${eta === undefined ? '' : ` ETA ${formatDuration(eta)}`}`,
      index: p.Index,
      count: p.Total,
    };
    if (!this.started) {
      this.started = true;
      this.bar.start(total, value, payload);
      return;
    }
    if (total !== this.bar.getTotal()) this.bar.setTotal(total);
    this.bar.update(value, payload);
  }

  message(text: string): void {
    this.terminal.write(`\r\x1b[2K${text}\n`);
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.started) this.bar.stop();
  }
}

export interface ProgressSinks {
  /** A terminal to draw a bar on; without one, plain lines go to `line`. */
  readonly terminal?: ProgressTerminal | undefined;
  readonly line: (text: string) => void;
}

export async function createTransferProgress(sinks: ProgressSinks): Promise<TransferProgress> {
  if (!sinks.terminal?.isTTY) return new PlainProgress(sinks.line);
  // Loaded here only: commands that transfer nothing never pay for it (dm start-up time).
  const mod: CliProgress & { default?: CliProgress } = await import('cli-progress');
  // A CommonJS module: Node gives named exports, the bundle's chunk only `default`.
  return new BarProgress(mod.default?.SingleBar ? mod.default : mod, sinks.terminal);
}
