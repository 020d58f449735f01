import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import { DEFAULT_RPC_PORT, DEFAULT_TLS_PORT } from '@dotmesh/rpc/server-defaults';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import { newRemote } from '../config.ts';
import type { CommandContext } from '../context.ts';
import type { KnownTrust } from '../known-servers.ts';
import { checkCaPin, decideTls, type TlsDecision } from './remote-tls.ts';

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
  /** How dm talks to it: http or https (known_servers or port 443); null when the port is deduced. */
  scheme?: 'http' | 'https' | null;
  /** How an https server's certificate is trusted (known_servers); null for http. */
  trust?: KnownTrust['kind'] | null;
  keyId?: string;
}

export async function listRemotes(ctx: CommandContext): Promise<{ currentRemote: string; remotes: RemoteListItem[] }> {
  const config = await ctx.loadConfig();
  const known = await ctx.knownServers();
  const names = [...new Set([...Object.keys(config.Remotes), ...Object.keys(config.S3Remotes)])].sort();
  const remotes = names.map((name): RemoteListItem => {
    const r = config.Remotes[name];
    const current = name === config.CurrentRemote;
    if (!r) return { name, kind: 's3', current, keyId: config.S3Remotes[name]?.KeyID ?? '' };
    const trust = r.Port === 0 ? undefined : known.get(r.Hostname, r.Port);
    const scheme = r.Port === 0 ? null : trust !== undefined || r.Port === 443 ? 'https' : 'http';
    return {
      name,
      kind: 'dotmesh',
      current,
      user: r.User,
      hostname: r.Hostname,
      port: r.Port,
      scheme,
      trust: trust?.kind ?? (r.Port === 443 ? 'ca' : null),
    };
  });
  return { currentRemote: config.CurrentRemote, remotes };
}

/** `https://admin@10.0.0.2:32606`; without a port, the ports dm tries. */
export function remoteAddress(r: Pick<RemoteListItem, 'user' | 'hostname' | 'port' | 'scheme'>): string {
  const host = r.hostname?.includes(':') ? `[${r.hostname}]` : r.hostname;
  if (r.port === 0 || r.scheme === null) return `${r.user}@${host} (no port: tries https:443, http:80, http:32607)`;
  return `${r.scheme}://${r.user}@${host}:${r.port}`;
}

export function renderRemotes(data: { remotes: RemoteListItem[] }, verbose: boolean): string[] {
  if (!verbose) return data.remotes.map((r) => r.name);
  return data.remotes.map((r) =>
    r.kind === 'dotmesh' ? `${r.current ? '* ' : '  '}${r.name}\t${remoteAddress(r)}` : `${r.name}\t${r.keyId}`,
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
  /** Trust any certificate of the cluster CA with this pin (`sha256:<hex>`), as a join does. */
  readonly trustCa?: string;
  /** false: save it without contacting it (`--no-check`). */
  readonly check?: boolean;
}

export interface AddRemoteResult {
  name: string;
  switched: boolean;
  /** false when saved with --no-check (neither the server nor the API key was checked). */
  checked: boolean;
  https?: { fingerprint: string; trust: KnownTrust['kind'] };
  /** The API key goes in clear text over plain HTTP to a host that is not this one. */
  cleartext: boolean;
}

/** Loopback names and addresses: plain HTTP never leaves the host. */
export function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::1';
}

/** What to do when the server of a new remote cannot be reached. */
function unreachableHint(name: string, hostname: string, port: number): string {
  const where = port === 0 ? `on ${hostname}` : `at ${hostname}:${port}`;
  if (isLoopback(hostname)) {
    return `no dotmesh-server answers ${where}: start one on this host with \`dm cluster init\` (or check the port), then add the remote again`;
  }
  return (
    `check that dotmesh-server runs on ${hostname} and listens ${where} on an address this machine reaches ` +
    `(\`dm cluster init --listen\`, default 0.0.0.0), and that no firewall blocks the port; ` +
    `to save the remote now and check later, add --no-check: \`dm remote add --no-check ${name} …\``
  );
}

export async function addRemote(
  ctx: CommandContext,
  name: string,
  target: string,
  options: AddRemoteOptions = {},
): Promise<AddRemoteResult> {
  const https =
    options.https === true ||
    /^https:\/\//i.test(target) ||
    options.trustFingerprint !== undefined ||
    options.trustCa !== undefined;
  if (options.trustFingerprint !== undefined && options.trustCa !== undefined) {
    throw usage('--trust-fingerprint and --trust-ca: give one of them');
  }
  const parsed = parseRemoteTarget(target.replace(/^https:\/\//i, ''));
  const { user, hostname } = parsed;
  const port = https && parsed.port === 0 ? 443 : parsed.port;
  const check = options.check !== false;
  if (!check && https && options.trustFingerprint === undefined && options.trustCa === undefined && port !== 443) {
    throw usage(
      '--no-check with HTTPS needs --trust-fingerprint <sha256>: without contacting the server there is no certificate to pin',
    );
  }
  const config = await ctx.loadConfig();
  if (Object.hasOwn(config.Remotes, name) || Object.hasOwn(config.S3Remotes, name)) {
    throw new DotmeshError('CONFLICT', `Remote exists '${name}'`);
  }
  const cleartext = !https && port !== 443 && !isLoopback(hostname);
  if (cleartext) {
    const tlsPort = parsed.port === DEFAULT_RPC_PORT || parsed.port === 0 ? String(DEFAULT_TLS_PORT) : '<its HTTPS port>';
    ctx.reporter.warn(
      `the API key of remote '${name}' travels in clear text over plain HTTP to ${hostname}; ` +
        `use HTTPS instead: dm remote add ${name} https://${user}@${hostname}:${tlsPort}`,
    );
  }
  let apiKey = ctx.env.DOTMESH_PASSWORD ?? '';
  if (apiKey === '') {
    apiKey = (await ctx.io.readLine('API key: ', { hidden: true, toStderr: ctx.reporter.json })) ?? '';
  }
  const remote = newRemote(user, hostname, port, apiKey);
  let tls: TlsDecision | undefined;
  if (check) {
    try {
      tls = https ? await decideTls(ctx, hostname, port, options.trustFingerprint, options.trustCa) : undefined;
      await (await ctx.clientFor(remote, tls?.trust)).call('Ping', {});
    } catch (e) {
      if (!isDotmeshError(e) || e.code !== 'UNAVAILABLE') throw e;
      throw new DotmeshError('UNAVAILABLE', e.message, { hint: unreachableHint(name, hostname, parsed.port), cause: e });
    }
  } else if (https && options.trustCa !== undefined) {
    tls = { trust: { kind: 'cluster-ca', caPin: checkCaPin(options.trustCa) }, fingerprint: '', changed: true };
  } else if (https && options.trustFingerprint !== undefined) {
    const { normalizeFingerprint } = await import('@dotmesh/rpc/tls');
    const fingerprint = normalizeFingerprint(options.trustFingerprint);
    tls = { trust: { kind: 'pin', fingerprint }, fingerprint, changed: true };
  }
  if (tls?.changed) {
    const known = await ctx.knownServers();
    known.set(hostname, port, tls.trust);
    await known.save();
  }
  config.Remotes[name] = remote;
  const switched = config.CurrentRemote === '';
  if (switched) config.CurrentRemote = name;
  await ctx.saveConfig();
  return {
    name,
    switched,
    checked: check,
    ...(tls ? { https: { fingerprint: tls.fingerprint, trust: tls.trust.kind } } : {}),
    cleartext,
  };
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
    .usage('[-v] [<command>]')
    .description(
      "List the remotes (dotmesh clusters) this client knows, by name. With -v: '*' marks the current remote, and each shows how dm reaches it: scheme, user, host and port.",
    )
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
    .usage('[options] <remote-name> [https://]<user>@<host>[:<port>]')
    .description(
      "Add a remote: a dotmesh cluster reached at <host> as <user> with that user's API key (prompted for, or $DOTMESH_PASSWORD). The server is asked first, with the key, and the remote saved only if it answers (unless --no-check). Between machines use HTTPS (https://…, the server's port 32606 by default): over plain HTTP the API key travels in clear text.",
    )
    .argument('[args...]')
    .option('--https', "talk to it over HTTPS (the server's tlsPort), verifying its certificate by a pin or the CAs")
    .option('--trust-fingerprint <sha256>', 'pin this SHA-256 certificate fingerprint (no prompt; implies --https)')
    .option(
      '--trust-ca <pin>',
      "trust any node of the cluster whose CA has this pin (sha256:<hex>, as 'dm cluster token create' prints it)",
    )
    .option('--no-check', 'save the remote without contacting it (neither the server nor the API key is checked)')
    .action(
      action<{ https?: boolean; trustFingerprint?: string; trustCa?: string; check?: boolean }>(app, async (ctx, args, opts) => {
        const [name, target] = args;
        if (args.length !== 2 || name === undefined || target === undefined) {
          throw usage('Please specify <remote-name> <user@cluster-hostname>');
        }
        const data = await addRemote(ctx, name, target, {
          ...(opts.https ? { https: true } : {}),
          ...(opts.trustFingerprint === undefined ? {} : { trustFingerprint: opts.trustFingerprint }),
          ...(opts.trustCa === undefined ? {} : { trustCa: opts.trustCa }),
          ...(opts.check === false ? { check: false } : {}),
        });
        ctx.reporter.result(data, (d) => [
          d.checked ? 'Remote added.' : 'Remote added without checking it (--no-check).',
          ...(d.switched ? ['Automatically switched to first remote.'] : []),
        ]);
      }),
    );
  for (const [verb, summary, description, run] of [
    ['rm', 'Remove a remote', 'Remove the remote <remote> from the config (its server and dots are not touched).', removeRemote],
    ['switch', 'Switch to a remote', 'Make <remote> the current remote: the cluster other commands talk to.', switchRemote],
  ] as const) {
    remote
      .command(verb)
      .summary(summary)
      .usage('<remote>')
      .description(description)
      .argument('[args...]')
      .action(
        action(app, async (ctx, args) => {
          if (args.length !== 1 || args[0] === undefined) throw usage('Please specify <remote-name>');
          ctx.reporter.result(await run(ctx, args[0]), () => []);
        }),
      );
  }
}
