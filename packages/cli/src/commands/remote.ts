import { DotmeshError } from '@dotmesh/core';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import { newRemote } from '../config.ts';
import type { CommandContext } from '../context.ts';
import { decideTls } from './remote-tls.ts';

/**
 * `dm remote [-v]`, `dm remote add <name> <user@host[:port]>`, `dm remote rm <name>`,
 * `dm remote switch <name>` — config-only except `add`, which Pings the remote with the new
 * credentials before saving it.
 */
export interface RemoteListItem {
  name: string;
  kind: 'dotmesh' | 's3';
  current: boolean;
  user?: string;
  hostname?: string;
  port?: number;
  keyId?: string;
}

export async function listRemotes(ctx: CommandContext): Promise<{ currentRemote: string; remotes: RemoteListItem[] }> {
  const config = await ctx.loadConfig();
  const names = [...new Set([...Object.keys(config.Remotes), ...Object.keys(config.S3Remotes)])].sort();
  const remotes = names.map((name): RemoteListItem => {
    const r = config.Remotes[name];
    const current = name === config.CurrentRemote;
    if (r) return { name, kind: 'dotmesh', current, user: r.User, hostname: r.Hostname, port: r.Port };
    return { name, kind: 's3', current, keyId: config.S3Remotes[name]?.KeyID ?? '' };
  });
  return { currentRemote: config.CurrentRemote, remotes };
}

export function renderRemotes(data: { remotes: RemoteListItem[] }, verbose: boolean): string[] {
  if (!verbose) return data.remotes.map((r) => r.name);
  return data.remotes.map((r) =>
    r.kind === 'dotmesh' ? `${r.current ? '* ' : '  '}${r.name}\t${r.user}@${r.hostname}` : `${r.name}\t${r.keyId}`,
  );
}

/** Parses `user@host[:port]` with the original's texts. */
export function parseRemoteTarget(target: string): { user: string; hostname: string; port: number } {
  const at = target.indexOf('@');
  if (at < 0) throw usage(`Please specify user@cluster-hostname, got ${target}`);
  const user = target.slice(0, at);
  let hostname = target.slice(at + 1);
  let port = 0;
  const colon = hostname.indexOf(':');
  if (colon >= 0) {
    const portText = hostname.slice(colon + 1);
    hostname = hostname.slice(0, colon);
    if (!/^\d+$/.test(portText) || Number(portText) > 65535) {
      throw usage(`Please specify a port as an integer, e.g user@cluster-hostname:port, got ${portText}`);
    }
    port = Number(portText);
  }
  if (user === '' || hostname === '') throw usage(`Please specify user@cluster-hostname, got ${target}`);
  return { user, hostname, port };
}

export interface AddRemoteOptions {
  /** Reach it over https (also implied by an `https://` target); see remote-tls.ts. */
  readonly https?: boolean;
  readonly trustFingerprint?: string;
}

export async function addRemote(
  ctx: CommandContext,
  name: string,
  target: string,
  options: AddRemoteOptions = {},
): Promise<{ name: string; switched: boolean; https?: { fingerprint: string; trust: 'pin' | 'ca' } }> {
  const https = options.https === true || /^https:\/\//i.test(target) || options.trustFingerprint !== undefined;
  const parsed = parseRemoteTarget(target.replace(/^https:\/\//i, ''));
  const { user, hostname } = parsed;
  const port = https && parsed.port === 0 ? 443 : parsed.port;
  const config = await ctx.loadConfig();
  if (Object.hasOwn(config.Remotes, name) || Object.hasOwn(config.S3Remotes, name)) {
    throw new DotmeshError('CONFLICT', `Remote exists '${name}'`);
  }
  let apiKey = ctx.env.DOTMESH_PASSWORD ?? '';
  if (apiKey === '') {
    apiKey = (await ctx.io.readLine('API key: ', { hidden: true, toStderr: ctx.reporter.json })) ?? '';
  }
  const tls = https ? await decideTls(ctx, hostname, port, options.trustFingerprint) : undefined;
  const remote = newRemote(user, hostname, port, apiKey);
  await (await ctx.clientFor(remote, tls?.trust)).call('Ping', {});
  if (tls?.changed) {
    const known = await ctx.knownServers();
    known.set(hostname, port, tls.trust);
    await known.save();
  }
  config.Remotes[name] = remote;
  const switched = config.CurrentRemote === '';
  if (switched) config.CurrentRemote = name;
  await ctx.saveConfig();
  return { name, switched, ...(tls ? { https: { fingerprint: tls.fingerprint, trust: tls.trust.kind } } : {}) };
}

export async function removeRemote(ctx: CommandContext, name: string): Promise<{ name: string }> {
  const config = await ctx.loadConfig();
  if (Object.hasOwn(config.Remotes, name)) delete config.Remotes[name];
  else if (Object.hasOwn(config.S3Remotes, name)) delete config.S3Remotes[name];
  else throw new DotmeshError('INVALID_ARGUMENT', `No such remote '${name}'`);
  if (config.CurrentRemote === name) config.CurrentRemote = '';
  await ctx.saveConfig();
  return { name };
}

export async function switchRemote(ctx: CommandContext, name: string): Promise<{ name: string }> {
  const config = await ctx.loadConfig();
  if (!Object.hasOwn(config.Remotes, name)) {
    if (Object.hasOwn(config.S3Remotes, name)) {
      throw new DotmeshError('INVALID_ARGUMENT', `Cannot switch to remote '${name}' - is an S3 remote`);
    }
    throw new DotmeshError('INVALID_ARGUMENT', `No such remote '${name}'`);
  }
  config.CurrentRemote = name;
  await ctx.saveConfig();
  return { name };
}

export function register(program: Command, app: CliApp): void {
  const remote = program
    .command('remote')
    .summary('List remote clusters. Use dm remote -v to see remotes')
    .usage('[-v]')
    .argument('[args...]')
    .option('-v, --verbose', 'verbose list of remotes')
    .action(
      action<{ verbose?: boolean }>(app, async (ctx, args, opts) => {
        if (args.length > 0) throw usage('Too many arguments specified.');
        ctx.reporter.result(await listRemotes(ctx), (d) => renderRemotes(d, opts.verbose === true));
      }),
    );
  remote
    .command('add')
    .summary('Add a remote')
    .usage('<remote-name> [https://]<user@cluster-hostname>[:<port-number>] [--https [--trust-fingerprint <sha256>]]')
    .argument('[args...]')
    .option('--https', "talk to it over HTTPS (the server's tlsPort), verifying its certificate by a pin or the CAs")
    .option('--trust-fingerprint <sha256>', 'pin this SHA-256 certificate fingerprint (no prompt; implies --https)')
    .action(
      action<{ https?: boolean; trustFingerprint?: string }>(app, async (ctx, args, opts) => {
        const [name, target] = args;
        if (args.length !== 2 || name === undefined || target === undefined) {
          throw usage('Please specify <remote-name> <user@cluster-hostname>');
        }
        const data = await addRemote(ctx, name, target, {
          ...(opts.https ? { https: true } : {}),
          ...(opts.trustFingerprint === undefined ? {} : { trustFingerprint: opts.trustFingerprint }),
        });
        ctx.reporter.result(data, (d) => ['Remote added.', ...(d.switched ? ['Automatically switched to first remote.'] : [])]);
      }),
    );
  for (const [verb, summary, run] of [
    ['rm', 'Remove a remote', removeRemote],
    ['switch', 'Switch to a remote', switchRemote],
  ] as const) {
    remote
      .command(verb)
      .summary(summary)
      .usage('<remote>')
      .argument('[args...]')
      .action(
        action(app, async (ctx, args) => {
          if (args.length !== 1 || args[0] === undefined) throw usage('Please specify <remote-name>');
          ctx.reporter.result(await run(ctx, args[0]), () => []);
        }),
      );
  }
}
