import type { Command } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';
import { currentRemoteHeader } from './list.ts';

/** `dm version`: client version, then the server's (RPC: Version, admin). */
export const CLIENT_VERSION: string = pkg.version;
const UPGRADE_DOCS = 'https://docs.dotmesh.com/install-setup/upgrading/';

export interface VersionResult {
  currentRemote: string;
  client: { version: string };
  server: { version: string; latestVersion: string; outdated: boolean };
}

export async function version(ctx: CommandContext): Promise<VersionResult> {
  const currentRemote = (await ctx.loadConfig()).CurrentRemote;
  const v = await ctx.call('Version', {});
  return {
    currentRemote,
    client: { version: CLIENT_VERSION },
    server: { version: v.installed_version, latestVersion: v.current_version, outdated: v.outdated },
  };
}

export function renderServerVersion(d: VersionResult): string[] {
  const out = ['Server:', `\tVersion: ${d.server.version}`];
  if (d.server.outdated) {
    out.push('\tUpgrade available', `\tLatest server version ${d.server.latestVersion} available`);
    out.push(`\tLearn how to upgrade at ${UPGRADE_DOCS}`);
  }
  return out;
}

export function register(program: Command, app: CliApp): void {
  program
    .command('version')
    .summary('Show the Dotmesh version information')
    .description("Show the version of this client and of the current remote's server.")
    .argument('[args...]')
    .action(
      action(app, async (ctx, args) => {
        if (args.length > 0) throw usage('Please specify no arguments.');
        // As the original: header and client version first, so they show even if the server is down.
        ctx.reporter.notice(currentRemoteHeader((await ctx.loadConfig()).CurrentRemote));
        ctx.reporter.notice('');
        ctx.reporter.notice('Client:');
        ctx.reporter.notice(`\tVersion: ${CLIENT_VERSION}`);
        ctx.reporter.result(await version(ctx), renderServerVersion);
      }),
    );
}
