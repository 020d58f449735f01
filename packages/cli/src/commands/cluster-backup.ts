import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import type { BackupV1 } from '@dotmesh/rpc';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { DmRemote } from '../config.ts';
import type { CommandContext } from '../context.ts';

/**
 * `dm cluster backup-etcd` prints the current remote's store backup (DumpEtcd, BackupV1
 * JSON) on stdout; `dm cluster restore-etcd` reads one from stdin and restores it
 * (RestoreEtcd): users with the verifiers of their passwords and API keys. A backup holds no
 * API key in clear (except the original's), so when the restore replaced the current remote's
 * user, dm learns the user's restored key from the original's backup, or asks GetApiKey with
 * the API key or password from before the backup, given in $DOTMESH_PASSWORD, and updates the
 * remote; without either it says that the remote's key is no longer accepted. That secret
 * also authenticates the restore itself when the remote's key is refused (a remote an earlier
 * restore left behind). Both need the admin user.
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
  /** The current remote, when the restored users do not accept its API key and dm could not learn the restored one. */
  staleRemote: string | null;
}

export async function restoreEtcd(ctx: CommandContext, text: string): Promise<RestoreResult> {
  if (text.trim() === '') {
    throw new DotmeshError('INVALID_ARGUMENT', 'no backup on stdin', { hint: 'dm cluster restore-etcd < backup.json' });
  }
  // Loaded here only: the schema brings zod, which ordinary commands must not load at start.
  const { parseBackup } = await import('@dotmesh/rpc');
  const dump = parseBackup(text);
  const { name, remote } = await ctx.currentRemote();
  const secret = ctx.env.DOTMESH_PASSWORD ?? '';
  const restore = async (apiKey: string) =>
    (await ctx.clientFor({ ...remote, ApiKey: apiKey })).call('RestoreEtcd', { Prefix: '', Dump: dump });
  const restored = await restore(remote.ApiKey).catch((e: unknown) => {
    if (secret === '' || !isUnauthenticated(e)) throw e;
    return restore(secret);
  });
  const result: RestoreResult = { restored, users: dump.users?.length ?? 0, updatedRemote: null, staleRemote: null };
  if (!restored) return result;
  const clear = dump.users?.find((u) => u.Name === remote.User)?.ApiKey;
  const apiKey = clear ? clear : ((await apiKeyFor(ctx, remote, remote.ApiKey)) ?? (await apiKeyFor(ctx, remote, secret)));
  if (apiKey === null) result.staleRemote = name;
  else if (apiKey !== remote.ApiKey) {
    const config = await ctx.loadConfig();
    const record = config.Remotes[name];
    if (record) {
      record.ApiKey = apiKey;
      await ctx.saveConfig();
      result.updatedRemote = name;
    }
  }
  return result;
}

/**
 * The remote user's API key, asked with `secret` (their key or password); null when the
 * secret is refused, or when the server cannot show the key (kept as a verifier only).
 */
async function apiKeyFor(ctx: CommandContext, remote: DmRemote, secret: string): Promise<string | null> {
  if (secret === '') return null;
  try {
    return (await (await ctx.clientFor({ ...remote, ApiKey: secret })).call('GetApiKey', {})).ApiKey;
  } catch (e) {
    if (isUnauthenticated(e) || (isDotmeshError(e) && e.code === 'UNSUPPORTED')) return null;
    throw e;
  }
}

function isUnauthenticated(e: unknown): boolean {
  return isDotmeshError(e) && e.code === 'UNAUTHENTICATED';
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
          ...(r.staleRemote
            ? [
                `Remote '${r.staleRemote}' has an API key the restored users do not accept (a backup holds no API key in clear).`,
                `Give dm the admin's API key or password from before the backup: DOTMESH_PASSWORD=<it> dm cluster restore-etcd < <backup> (restoring again changes nothing else).`,
              ]
            : []),
        ]);
      }),
    );
}
