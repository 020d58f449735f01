import { DotmeshError } from '@dotmesh/core';
import type { Command } from 'commander';
import type { CommandContext } from './context.ts';

/**
 * Glue between commander and handlers. Every command declares its positional arguments as
 * `[args...]` and checks the count itself, so the errors are the original client's texts.
 */
export interface CliApp {
  /** Builds the context from the command's (global) options. */
  context(cmd: Command): CommandContext;
}

/** `cmd` is the command itself, for the few handlers that ask where an option's value came from. */
export type Handler<O> = (ctx: CommandContext, args: string[], opts: O, cmd: Command) => Promise<void>;

export function action<O>(app: CliApp, handler: Handler<O>) {
  return async (args: string[], opts: O, cmd: Command): Promise<void> => handler(app.context(cmd), args, opts, cmd);
}

/** A wrong use of a command (exit code 2). */
export function usage(message: string): DotmeshError {
  return new DotmeshError('INVALID_ARGUMENT', message);
}
