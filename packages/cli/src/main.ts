import { homedir } from 'node:os';
import { ERROR_CODES, exitCodeFor, isDotmeshError } from '@dotmesh/core';
import { Command, CommanderError } from 'commander';
import type { CliApp } from './command.ts';
import * as branch from './commands/branch.ts';
import * as checkout from './commands/checkout.ts';
import * as clone from './commands/clone.ts';
import * as cluster from './commands/cluster.ts';
import * as commit from './commands/commit.ts';
import * as debug from './commands/debug.ts';
import * as diff from './commands/diff.ts';
import * as dot from './commands/dot.ts';
import * as init from './commands/init.ts';
import * as list from './commands/list.ts';
import * as log from './commands/log.ts';
import * as mount from './commands/mount.ts';
import * as pull from './commands/pull.ts';
import * as push from './commands/push.ts';
import * as remote from './commands/remote.ts';
import * as reset from './commands/reset.ts';
import * as switchCmd from './commands/switch.ts';
import * as version from './commands/version.ts';
import { CommandContext, type Runtime } from './context.ts';
import { errorDetailLines } from './error-details.ts';
import { HELP_CONFIGURATION } from './help.ts';
import type { Io } from './io.ts';
import { createReporter } from './reporter.ts';

/**
 * `dm`, the Dotmesh client. `main` is the whole program: it takes the user's arguments (without
 * `node` and the script), the environment and an Io, runs one command, and returns the exit
 * status. It never reads process.* itself (bin.ts does), so tests run it in-process.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export interface MainOptions {
  /** RPC id generator (tests). */
  readonly newId?: () => string;
  /** Defaults: no script path, this process's Node and uid. */
  readonly runtime?: Partial<Runtime>;
}

export const DEFAULT_CONFIG_PATH = '~/.dotmesh/config';

/** `~/x` → `$HOME/x` (HOME from env; the OS's idea of home when unset). */
export function expandHome(path: string, env: Env): string {
  if (path !== '~' && !path.startsWith('~/')) return path;
  return (env.HOME || homedir()) + path.slice(1);
}

/** Items joined by ", " in lines of at most `width` characters. */
function wrapList(items: readonly string[], width: number): string[] {
  const lines: string[] = [];
  for (const item of items) {
    const last = lines.length - 1;
    if (last >= 0 && `${lines[last]}, ${item},`.length <= width) lines[last] = `${lines[last]}, ${item}`;
    else lines.push(item);
  }
  return lines.map((l, i) => (i < lines.length - 1 ? `${l},` : l));
}

/** The exit-code table of `dm --help`, generated from core's one table. */
export function exitCodesHelp(): string {
  const byExit = new Map<number, string[]>([[0, ['success']]]);
  for (const [code, info] of Object.entries(ERROR_CODES)) byExit.set(info.exitCode, [...(byExit.get(info.exitCode) ?? []), code]);
  const lines = [...byExit.entries()]
    .sort(([a], [b]) => a - b)
    .map(([n, codes]) => `  ${String(n).padEnd(3)} ${wrapList(codes, 80 - 6).join(`\n${' '.repeat(6)}`)}`);
  return `\nExit codes (errors print "error: <message>" on stderr,\nor {"error":{code,message,hint,data}} with --json):\n${lines.join('\n')}\n`;
}

/** The command tree of `dm` (exported for the help tests, which walk it). */
export function buildProgram(app: CliApp, io: Io): Command {
  const program = new Command('dm')
    .description(
      `dotmesh (dm) is like git for your data in Docker.

This is the client. Configure it to talk to a dotmesh cluster with 'dm remote
add'. Create a dotmesh cluster with 'dm cluster init'.`,
    )
    .option('-c, --config <path>', 'Config file to use', DEFAULT_CONFIG_PATH)
    .option('--verbose', 'Display details of RPC requests and responses to the dotmesh server')
    .option('--json', 'Print results as JSON (a stable shape per command) instead of text')
    .helpCommand(true)
    .configureHelp(HELP_CONFIGURATION)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) })
    .addHelpText('after', exitCodesHelp());
  for (const command of [
    cluster,
    remote,
    list,
    init,
    switchCmd,
    commit,
    log,
    branch,
    checkout,
    reset,
    clone,
    pull,
    push,
    diff,
    debug,
    dot,
    version,
    mount,
  ]) {
    command.register(program, app);
  }
  return program;
}

/**
 * An error on stderr: `error: <message>`, the lines of its data worth reading
 * (error-details.ts), `hint: <hint>`; with --json one line `{"error":{code,message,hint,data}}`.
 */
function printError(io: Io, e: unknown, verbose: boolean, json: boolean): void {
  const message = e instanceof Error ? e.message : String(e);
  if (json) {
    const error = isDotmeshError(e)
      ? { code: e.code, message, hint: e.hint ?? null, data: e.data ?? null }
      : { code: 'INTERNAL', message, hint: null, data: null };
    io.stderr(`${JSON.stringify({ error })}\n`);
    return;
  }
  // Texts the original client printed with their own `Error:` prefix get no second one.
  io.stderr(/^error:/i.test(message) ? `${message}\n` : `error: ${message}\n`);
  if (isDotmeshError(e)) for (const line of errorDetailLines(e)) io.stderr(`${line}\n`);
  if (isDotmeshError(e) && e.hint) io.stderr(`hint: ${e.hint}\n`);
  if (verbose && !isDotmeshError(e) && e instanceof Error && e.stack) io.stderr(`${e.stack}\n`);
}

export async function main(argv: readonly string[], env: Env, io: Io, options: MainOptions = {}): Promise<number> {
  let verbose = false;
  let json = argv.includes('--json');
  const runtime: Runtime = {
    scriptPath: options.runtime?.scriptPath,
    nodePath: options.runtime?.nodePath ?? process.execPath,
    uid: options.runtime?.uid ?? process.getuid?.() ?? -1,
  };
  const app: CliApp = {
    context(cmd) {
      const opts = cmd.optsWithGlobals<{ config: string; verbose?: boolean; json?: boolean }>();
      verbose = opts.verbose === true;
      json = opts.json === true;
      return new CommandContext(
        { configPath: expandHome(opts.config, env), verbose, json },
        { io, env, runtime, reporter: createReporter(io, json), ...(options.newId ? { newId: options.newId } : {}) },
      );
    },
  };
  const program = buildProgram(app, io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has printed its own message (or the help) already.
      return e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.help' ? 0 : 2;
    }
    printError(io, e, verbose, json);
    return exitCodeFor(e);
  }
}
