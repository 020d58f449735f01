import { DotmeshError, type DotName, formatDotName } from '@dotmesh/core';
import type { CallParamsOf, MethodName, ResultOf } from '@dotmesh/rpc';
import { DotmeshClient, rpcUrl } from '@dotmesh/rpc/client';
import { currentBranchOf, type DmConfig, type DmRemote, loadConfig, saveConfig } from './config.ts';
import type { Io } from './io.ts';
import { KnownServers, type KnownTrust, knownServersPath } from './known-servers.ts';
import type { Reporter } from './reporter.ts';

/**
 * What a command handler gets: the parsed global options, the config file, RPC clients for
 * remotes, and the reporter. Handlers never touch process.* and never print directly (only
 * through `reporter.notice` for preamble/progress lines and by returning data).
 */
export interface GlobalOptions {
  readonly configPath: string;
  readonly verbose: boolean;
  readonly json: boolean;
}

/** Facts about the running dm process, passed in by the entry point. */
export interface Runtime {
  /** Path of the running dm script or bundle (to find a dotmesh-server next to it). */
  readonly scriptPath: string | undefined;
  /** The Node binary running dm (servers written in TypeScript run under it). */
  readonly nodePath: string;
  readonly uid: number;
}

export interface ContextDeps {
  readonly io: Io;
  readonly runtime: Runtime;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly reporter: Reporter;
  /** RPC id generator (tests); default random 63-bit. */
  readonly newId?: () => string;
}

export const NO_CURRENT_DOT = "No current dot is selected. List them with 'dm list' and select one with 'dm switch'.";

/** Ports tried in order when a remote has no port, as the original client did. */
const DEDUCED_URLS = (host: string) => [rpcUrl(host, 443), `http://${host}:80/rpc`, rpcUrl(host, 32607)];

export class CommandContext {
  readonly options: GlobalOptions;
  readonly io: Io;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly reporter: Reporter;
  readonly runtime: Runtime;
  private readonly newId: (() => string) | undefined;
  private config: DmConfig | undefined;
  private known: KnownServers | undefined;
  private readonly clients = new Map<string, DotmeshClient>();

  constructor(options: GlobalOptions, deps: ContextDeps) {
    this.options = options;
    this.io = deps.io;
    this.env = deps.env;
    this.reporter = deps.reporter;
    this.runtime = deps.runtime;
    this.newId = deps.newId;
  }

  async loadConfig(): Promise<DmConfig> {
    this.config ??= await loadConfig(this.options.configPath);
    return this.config;
  }

  async saveConfig(): Promise<void> {
    if (this.config) await saveConfig(this.options.configPath, this.config);
  }

  /** `known_servers` beside the config: which remotes are https, with which pin. */
  async knownServers(): Promise<KnownServers> {
    this.known ??= await KnownServers.load(knownServersPath(this.options.configPath));
    return this.known;
  }

  /** The current remote's name and record; errors name the fix. */
  async currentRemote(): Promise<{ name: string; remote: DmRemote }> {
    const config = await this.loadConfig();
    const name = config.CurrentRemote;
    if (name === '') {
      throw new DotmeshError('INVALID_ARGUMENT', 'No remote is selected.', {
        hint: 'run `dm cluster init` on this host, or `dm remote add <name> <user@host:port>`',
      });
    }
    const remote = config.Remotes[name];
    if (!remote) throw new DotmeshError('INVALID_ARGUMENT', `Unable to find remote '${name}', which was apparently current`);
    return { name, remote };
  }

  /**
   * Builds a client for a remote's coordinates (deducing the URL when port is 0). A remote
   * with a `known_servers` line (or the given `trust`, for `dm remote add`) is reached over
   * https, verified by its pin or the CAs. Clients are reused per coordinates and credentials.
   */
  async clientFor(remote: Pick<DmRemote, 'User' | 'Hostname' | 'Port' | 'ApiKey'>, trust?: KnownTrust): Promise<DotmeshClient> {
    const key = `${remote.User}@${remote.Hostname}:${remote.Port}\0${remote.ApiKey}`;
    const cached = trust ? undefined : this.clients.get(key);
    if (cached) return cached;
    const known = await this.knownServers();
    const trustOf = (port: number) => trust ?? known.get(remote.Hostname, port);
    const tlsFor = (url: string) => {
      const u = new URL(url);
      const t = trustOf(Number(u.port || 443));
      if (t?.kind === 'cluster-ca') return { tls: { caPin: t.caPin, pinSource: known.path } };
      return t?.kind === 'pin' ? { tls: { pin: t.fingerprint, pinSource: known.path } } : {};
    };
    const make = (url: string, timeoutMs?: number) =>
      new DotmeshClient({
        url,
        user: remote.User,
        apiKey: remote.ApiKey,
        ...tlsFor(url),
        ...(timeoutMs ? { timeoutMs } : {}),
        ...(this.options.verbose ? { verbose: (line: string) => this.verboseLine(line) } : {}),
        ...(this.newId ? { newId: this.newId } : {}),
      });
    let client = make(rpcUrl(remote.Hostname, remote.Port, trustOf(remote.Port) !== undefined));
    if (remote.Port === 0) client = await this.deduce(remote.Hostname, make);
    if (!trust) this.clients.set(key, client);
    return client;
  }

  /** --verbose lines go to stdout as the original, or stderr under --json (stdout stays JSON). */
  private verboseLine(line: string): void {
    if (this.options.json) this.io.stderr(`${line}\n`);
    else this.io.stdout(`${line}\n`);
  }

  private async deduce(host: string, make: (url: string, timeoutMs?: number) => DotmeshClient): Promise<DotmeshClient> {
    let lastError: unknown;
    for (const url of DEDUCED_URLS(host)) {
      try {
        await make(url, 5000).call('Ping', {});
        return make(url);
      } catch (e) {
        if (!(e instanceof DotmeshError) || e.code !== 'UNAVAILABLE') return make(url);
        lastError = e;
      }
    }
    throw new DotmeshError('UNAVAILABLE', `cannot reach a dotmesh-server at ${host} on ports 443, 80 or 32607`, {
      hint: 'give the port explicitly: `dm remote add <name> <user@host:port>`',
      cause: lastError,
    });
  }

  /** Calls a method on the current remote. */
  async call<M extends MethodName>(method: M, params: CallParamsOf<M>): Promise<ResultOf<M>> {
    const { remote } = await this.currentRemote();
    return (await this.clientFor(remote)).call(method, params);
  }

  /**
   * The current dot of the current remote ("" when none). As the original: when none is
   * selected and exactly one dot exists, it is selected and saved.
   */
  async currentDot(knownDots?: readonly DotName[]): Promise<string> {
    const { remote } = await this.currentRemote();
    if (remote.CurrentVolume !== '') return remote.CurrentVolume;
    const dots = knownDots ?? listNames(await this.call('List', null));
    const only = dots.length === 1 ? dots[0] : undefined;
    if (!only) return '';
    remote.CurrentVolume = formatDotName(only);
    await this.saveConfig();
    return remote.CurrentVolume;
  }

  /** The current dot, or the original's "No current dot is selected..." error. */
  async strictCurrentDot(): Promise<string> {
    const dot = await this.currentDot();
    if (dot === '') throw new DotmeshError('INVALID_ARGUMENT', NO_CURRENT_DOT);
    return dot;
  }

  async currentBranch(dot: string): Promise<string> {
    return currentBranchOf((await this.currentRemote()).remote, dot);
  }

  /** Does the dot exist on the current remote (via List, as the original)? */
  async dotExists(dot: DotName): Promise<boolean> {
    const all = await this.call('List', null);
    return Object.hasOwn(all, dot.namespace) && Object.hasOwn(all[dot.namespace] ?? {}, dot.name);
  }
}

/** Dot names of a List/ListWithContainers result. */
export function listNames(result: Record<string, Record<string, unknown>>): DotName[] {
  return Object.entries(result).flatMap(([namespace, dots]) => Object.keys(dots).map((name) => ({ namespace, name })));
}
