import { DotmeshError } from '@dotmesh/core';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';

/**
 * `dm debug <Method> [params]`: calls any method (`Ping` means `DotmeshRPC.Ping`) and prints
 * the JSON result on one line. Params are parsed as JSON when they are valid JSON, else sent as
 * a bare string (the original sent the argument as a string, e.g. a filesystem id for `Get`);
 * `--parse-json` makes invalid JSON an error instead.
 */
export function debugParams(text: string | undefined, parseJson: boolean): unknown {
  if (text === undefined) return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    if (parseJson) throw new DotmeshError('INVALID_ARGUMENT', `params are not valid JSON: ${(e as Error).message}`);
    return text;
  }
}

export async function debugCall(ctx: CommandContext, method: string, params: unknown): Promise<unknown> {
  const wire = method.includes('.') ? method : `DotmeshRPC.${method}`;
  const { remote } = await ctx.currentRemote();
  return (await ctx.clientFor(remote)).callRaw(wire, params);
}

export function register(program: Command, app: CliApp): void {
  program
    .command('debug')
    .summary('Make API calls')
    .description(
      "Call any API method of the current remote's server and print its result as JSON. <Method> without a dot means DotmeshRPC.<Method>; [params-json] is sent as JSON when it parses as JSON, else as a string.",
    )
    .usage('[--parse-json] <Method> [params-json]')
    .argument('[args...]')
    .option('--parse-json', 'refuse params that are not valid JSON (instead of sending them as a string)')
    .action(
      action<{ parseJson?: boolean }>(app, async (ctx, args, opts) => {
        const [method, params] = args;
        if (method === undefined || args.length > 2) throw usage('Please specify <Method> [params-json].');
        const result = await debugCall(ctx, method, debugParams(params, opts.parseJson === true));
        ctx.reporter.result(result, (r) => [JSON.stringify(r)]);
      }),
    );
}
