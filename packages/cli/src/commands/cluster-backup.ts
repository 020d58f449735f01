import { DotmeshError } from '@dotmesh/core';
import type { BackupV1 } from '@dotmesh/rpc';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';

/**
 * `dm cluster backup-etcd` prints the current remote's store backup (DumpEtcd, BackupV1
 * JSON) on stdout; `dm cluster restore-etcd` reads one from stdin and restores it
 * (RestoreEtcd): users with their password hashes and API keys. When the dump holds the
 * current remote's user with another API key, the remote's key is updated to it, since the
 * restore makes that the valid one. Both need the admin user.
 */
export async function backupEtcd(ctx: CommandContext): Promise<BackupV1> {
  const { remote } = await ctx.currentRemote();
  return (await ctx.clientFor(remote)).call('DumpEtcd', { Prefix: '' });
}

export interface RestoreResult {
  restored: boolean;
  users: number;
  /** The remote whose API key now is the restored one, when it changed. */
  updatedRemote: string | null;
}

export async function restoreEtcd(ctx: CommandContext, text: string): Promise<RestoreResult> {
  if (text.trim() === '') {
    throw new DotmeshError('INVALID_ARGUMENT', 'no backup on stdin', { hint: 'dm cluster restore-etcd < backup.json' });
  }
  // Loaded here only: the schema brings zod, which ordinary commands must not load at start.
  const { parseBackup } = await import('@dotmesh/rpc');
  const dump = parseBackup(text);
  const { name, remote } = await ctx.currentRemote();
  const restored = await (await ctx.clientFor(remote)).call('RestoreEtcd', { Prefix: '', Dump: dump });
  const mine = dump.users?.find((u) => u.Name === remote.User);
  let updatedRemote: string | null = null;
  if (restored && mine && mine.ApiKey !== '' && mine.ApiKey !== remote.ApiKey) {
    const config = await ctx.loadConfig();
    const record = config.Remotes[name];
    if (record) {
      record.ApiKey = mine.ApiKey;
      await ctx.saveConfig();
      updatedRemote = name;
    }
  }
  return { restored, users: dump.users?.length ?? 0, updatedRemote };
}

/** Reads stdin line by line until the text read is one whole JSON document, or input ends. */
async function readBackup(ctx: CommandContext): Promise<string> {
  const lines: string[] = [];
  for (let line = await ctx.io.readLine(''); line !== null; line = await ctx.io.readLine('')) {
    lines.push(line);
    if (isJson(lines.join('\n'))) break;
  }
  return lines.join('\n');
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

export function registerBackup(cluster: Command, app: CliApp): void {
  cluster
    .command('backup-etcd')
    .summary("Print a backup of the cluster store (users, registry) as JSON; restore it with 'dm cluster restore-etcd'")
    .argument('[args...]')
    .action(
      action(app, async (ctx, args) => {
        if (args.length > 0) throw usage('dm cluster backup-etcd takes no arguments.');
        ctx.reporter.result(await backupEtcd(ctx), (dump) => [JSON.stringify(dump)]);
      }),
    );
  cluster
    .command('restore-etcd')
    .summary('Restore a backup from stdin: users with their passwords and API keys (dots come from the pool)')
    .argument('[args...]')
    .action(
      action(app, async (ctx, args) => {
        if (args.length > 0) throw usage('dm cluster restore-etcd takes no arguments (the backup comes on stdin).');
        const result = await restoreEtcd(ctx, await readBackup(ctx));
        ctx.reporter.result(result, (r) => [
          `Restored ${r.users} user${r.users === 1 ? '' : 's'}; dots, branches and masters come from the pool.`,
          ...(r.updatedRemote ? [`Remote '${r.updatedRemote}' now uses the restored API key.`] : []),
        ]);
      }),
    );
}
