import { createInterface } from 'node:readline';

/**
 * Everything `dm` does to the terminal goes through an Io, so commands can be run in-process by
 * tests. Contract: `stdout`/`stderr` write text as given (callers add newlines); `readLine`
 * writes the prompt (to stderr when `toStderr`), reads one line without its newline (without
 * echo when `hidden` and stdin is a TTY), and returns null at end of input.
 */
export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  readLine(prompt: string, options?: { hidden?: boolean; toStderr?: boolean }): Promise<string | null>;
  sleep(ms: number): Promise<void>;
  /**
   * The terminal stdout is, when it is one: progress bars are drawn on it (with cursor
   * movements); absent for pipes, files and tests, which get plain lines instead.
   */
  readonly terminal?: ProgressTerminal | undefined;
}

/** What a progress bar needs of a TTY stream (process.stdout satisfies it). */
export interface ProgressTerminal {
  readonly isTTY: boolean;
  readonly columns: number;
  write(text: string, callback?: (err?: Error | null) => void): boolean;
}

/** The real terminal. */
export function processIo(): Io {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    readLine: (prompt, options = {}) => readLineFromStdin(prompt, options),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    get terminal() {
      return process.stdout.isTTY ? process.stdout : undefined;
    },
  };
}

async function readLineFromStdin(prompt: string, options: { hidden?: boolean; toStderr?: boolean }): Promise<string | null> {
  const out = options.toStderr ? process.stderr : process.stdout;
  out.write(prompt);
  const stdin = process.stdin;
  if (options.hidden && stdin.isTTY) {
    const line = await readHidden(stdin);
    out.write('\n');
    return line;
  }
  const rl = createInterface({ input: stdin, terminal: false });
  try {
    for await (const line of rl) return line;
    return null;
  } finally {
    rl.close();
  }
}

/** Reads a line in raw mode without echoing it (API keys). Ctrl-C aborts. */
function readHidden(stdin: NodeJS.ReadStream): Promise<string | null> {
  return new Promise((resolve, reject) => {
    let buf = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (value: string | null, error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done(buf);
        if (ch === '\u0003') return done(null, new Error('interrupted'));
        if (ch === '\u0004') return done(buf === '' ? null : buf);
        if (ch === '\u007f' || ch === '\b') buf = buf.slice(0, -1);
        else buf += ch;
      }
    };
    stdin.on('data', onData);
  });
}
