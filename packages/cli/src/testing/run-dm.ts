import type { Io, ProgressTerminal } from '../io.ts';
import { type Env, main } from '../main.ts';

/**
 * Test support: runs `dm` in-process with captured output, scripted input lines, shortened
 * sleeps, and the original client's request ids (Go's math/rand with seed 1 gives the same
 * sequence in every process, so each run starts again from 5577006791947779410).
 */
export const GO_RAND_IDS = [
  '5577006791947779410',
  '8674665223082153551',
  '6129484611666145821',
  '4037200794235010051',
  '3916589616287113937',
  '6334824724549167320',
  '605394647632969758',
  '1443635317331776148',
  '894385949183117216',
  '2775422040480279449',
];

export interface DmRun {
  code: number;
  stdout: string;
  stderr: string;
  prompts: string[];
  sleeps: number[];
}

export interface RunDmOptions {
  /** A fake terminal: stdout "is a TTY", so progress bars are drawn on it. */
  readonly terminal?: ProgressTerminal;
}

export async function runDm(
  args: string[],
  env: Env,
  input: string[] = [],
  uid = 1000,
  options: RunDmOptions = {},
): Promise<DmRun> {
  let stdout = '';
  let stderr = '';
  const prompts: string[] = [];
  const sleeps: number[] = [];
  const lines = [...input];
  const io: Io = {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    readLine: async (prompt) => {
      prompts.push(prompt);
      return lines.shift() ?? null;
    },
    // Recorded, and shortened to at most 20 ms so retry loops stay fast but real processes get time.
    sleep: async (ms) => {
      sleeps.push(ms);
      await new Promise((r) => setTimeout(r, Math.min(ms, 20)));
    },
    terminal: options.terminal,
  };
  let next = 0;
  const newId = () => GO_RAND_IDS[next++ % GO_RAND_IDS.length] as string;
  const code = await main(args, env, io, { newId, runtime: { uid, nodePath: process.execPath } });
  return { code, stdout, stderr, prompts, sleeps };
}
