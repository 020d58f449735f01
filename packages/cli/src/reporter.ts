import type { Io } from './io.ts';

/**
 * The only place command output is printed. Handlers return data plus a renderer; the reporter
 * prints the renderer's lines (human mode, the original client's texts) or the data as JSON
 * (`--json`, one stable object per command). `notice` lines are human-only preamble/progress
 * (e.g. the "Current remote: ..." header printed before the RPC, as the original does).
 * `warn` lines go to stderr as `warning: <text>` in both modes (stdout stays the result).
 */
export interface Reporter {
  readonly json: boolean;
  notice(line: string): void;
  warn(text: string): void;
  result<T>(data: T, render: (data: T) => readonly string[]): void;
}

export function createReporter(io: Io, json: boolean): Reporter {
  return {
    json,
    notice(line) {
      if (!json) io.stdout(`${line}\n`);
    },
    warn(text) {
      io.stderr(`warning: ${text}\n`);
    },
    result(data, render) {
      if (json) {
        io.stdout(`${JSON.stringify(data, null, 2)}\n`);
        return;
      }
      const lines = render(data);
      if (lines.length > 0) io.stdout(`${lines.join('\n')}\n`);
    },
  };
}
