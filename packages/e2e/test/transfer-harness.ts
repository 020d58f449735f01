import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CommitItem, DotmeshClient, TransferPollResult } from '@dotmesh/rpc';
import {
  type Cleanup,
  CurlClients,
  createHosts,
  type DmResult,
  makeTempDir,
  runDmIn,
  SERVER_BUNDLE,
  type ServerProcess,
  startServerProcess,
  type TestHost,
} from '@dotmesh/testkit';

/**
 * Several single-node clusters for the push/pull/clone scenarios (the original's
 * TestTwoSingleNodeClusters / TestThreeSingleNodeClusters): each cluster is a test host
 * (network namespace, joined to the others by the kit's veths) with a real btrfs
 * dotmesh-server and a HOME for the built `dm`, which runs inside that host. Every HOME has
 * the remote `local` (admin on its own cluster, the current remote: the initiator of its
 * transfers) and a remote named after every other cluster (admin there), as the original's
 * citools gave every node `cluster_<i>` remotes.
 *
 * Data is written where the original ran `docker run -v dot:/foo`: into the host path that
 * `Procure` returns (the test process shares the server's mount namespace).
 *
 * The RPC clients of a Cluster (`admin`, `client()`) call from inside its host with the kit's
 * CurlClients (route check first, never from the root namespace): these scenarios make
 * hundreds of checks.
 */
export const TRANSFER_TIMING = { transferIdleTimeoutMs: 5000, transferAttempts: 3, transferBackoffMs: 200 } as const;

export interface DmRunOptions {
  readonly env?: Record<string, string>;
}

export interface Cluster {
  /** Its remote's name in every other cluster's HOME. */
  readonly name: string;
  readonly host: TestHost;
  readonly server: ServerProcess;
  readonly home: string;
  /** An admin RPC client of this cluster's server (called from inside its host). */
  readonly admin: DotmeshClient;
  /** An RPC client of this cluster's server as `user` (API key or password). */
  client(user: string, secret: string): DotmeshClient;
  /** `user@address:port` of this cluster's API, for `dm remote add`. */
  target(user?: string): string;
  /** The built dm inside this cluster's host, with its HOME. Never throws for an exit code. */
  dm(args: readonly string[], o?: DmRunOptions): Promise<DmResult>;
  /** dm that must exit 0; returns stdout. Fails with dm's output and the servers' log tails. */
  ok(args: readonly string[], o?: DmRunOptions): Promise<string>;
  /** dm that must fail; returns its result (stdout and stderr joined in `output`). */
  fails(args: readonly string[], o?: DmRunOptions): Promise<DmResult & { output: string }>;
}

export interface Federation {
  readonly clusters: readonly Cluster[];
  /** The tails of every server's log, for failure messages. */
  logs(chars?: number): Promise<string>;
  /** Makes `local` the current remote again in every HOME (a failed test may leave another). */
  resetCurrentRemotes(): Promise<void>;
}

export async function startFederation(
  cleanup: Cleanup,
  names: readonly string[],
  options: { extraConfig?: (index: number) => Record<string, unknown> } = {},
): Promise<Federation> {
  const hosts = await createHosts({ cleanup, count: names.length });
  const clusters: Cluster[] = [];
  const logs = async (chars = 6000) => {
    const parts = await Promise.all(
      clusters.map(async (c) => `--- ${c.name} server log (tail) ---\n${(await c.server.log()).slice(-chars)}`),
    );
    return parts.join('\n');
  };
  const made = await Promise.all(
    names.map(async (name, i) => {
      const host = hosts[i]!;
      const [server, home] = await Promise.all([
        startServerProcess({
          cleanup,
          host,
          serverBin: SERVER_BUNDLE,
          extraConfig: { ...TRANSFER_TIMING, ...options.extraConfig?.(i) },
        }),
        makeTempDir('home-', cleanup),
      ]);
      return { name, host, server, home };
    }),
  );
  const curl = new CurlClients(cleanup);
  for (const m of made) {
    const admin = curl.client(m.host, m.server.url, 'admin', m.server.apiKey);
    const dm = (args: readonly string[], o: DmRunOptions = {}) =>
      runDmIn(m.host, args, { home: m.home, timeoutMs: 120_000, ...(o.env ? { env: o.env } : {}) });
    const describe = (args: readonly string[], r: DmResult) =>
      `dm ${args.join(' ')} on ${m.name} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
    clusters.push({
      ...m,
      admin,
      client: (user, secret) => curl.client(m.host, m.server.url, user, secret),
      target: (user = 'admin') => `${user}@${m.host.address}:${m.server.port}`,
      dm,
      async ok(args, o) {
        const r = await dm(args, o);
        if (r.code !== 0) assert.fail(`${describe(args, r)}\n${await logs()}`);
        return r.stdout;
      },
      async fails(args, o) {
        const r = await dm(args, o);
        if (r.code === 0) assert.fail(`expected a failure: ${describe(args, r)}\n${await logs(3000)}`);
        return { ...r, output: `${r.stdout}${r.stderr}` };
      },
    });
  }
  // `local` first: the first remote added becomes the current one.
  for (const c of clusters) {
    await c.ok(['remote', 'add', 'local', c.target()], { env: { DOTMESH_PASSWORD: c.server.apiKey } });
    for (const other of clusters) {
      if (other === c) continue;
      await c.ok(['remote', 'add', other.name, other.target()], { env: { DOTMESH_PASSWORD: other.server.apiKey } });
    }
  }
  return {
    clusters,
    logs,
    async resetCurrentRemotes() {
      for (const c of clusters) {
        const file = join(c.home, '.dotmesh', 'config');
        const config = JSON.parse(await readFile(file, 'utf8')) as { CurrentRemote: string };
        if (config.CurrentRemote === 'local') continue;
        config.CurrentRemote = 'local';
        await writeFile(file, JSON.stringify(config, null, 2), { mode: 0o600 });
      }
    },
  };
}

/** `[ns/]dot[@branch]` → the parts (namespace admin, master by default). */
function parts(dot: string): { namespace: string; name: string; branch: string } {
  const at = dot.indexOf('@');
  const base = at >= 0 ? dot.slice(0, at) : dot;
  const branch = at >= 0 ? dot.slice(at + 1) : '';
  const slash = base.indexOf('/');
  return slash >= 0
    ? { namespace: base.slice(0, slash), name: base.slice(slash + 1), branch }
    : { namespace: 'admin', name: base, branch };
}

/** The host path of `[ns/]dot[@branch]`'s default subdot on `c` (created if missing, as `docker run -v`). */
export async function procure(c: Cluster, dot: string): Promise<string> {
  const p = parts(dot);
  return c.admin.call('Procure', {
    Namespace: p.namespace,
    Name: p.branch === '' ? p.name : `${p.name}@${p.branch}`,
    Subdot: '',
  });
}

/** Writes a file into `[ns/]dot[@branch]` on `c` (the original's `docker run ... touch /foo/X`). */
export async function writeData(c: Cluster, dot: string, file: string, content: string): Promise<void> {
  await writeFile(join(await procure(c, dot), file), content);
}

export async function readData(c: Cluster, dot: string, file: string): Promise<string> {
  return readFile(join(await procure(c, dot), file), 'utf8');
}

/** Commits of `[ns/]dot[@branch]` on `c`, oldest first (admin's view). */
export async function commitsOf(c: Cluster, dot: string): Promise<CommitItem[]> {
  const p = parts(dot);
  return c.admin.call('Commits', { Namespace: p.namespace, Name: p.name, Branch: p.branch });
}

export async function commitIds(c: Cluster, dot: string): Promise<string[]> {
  return (await commitsOf(c, dot)).map((x) => x.Id);
}

export async function messagesOf(c: Cluster, dot: string): Promise<string[]> {
  return (await commitsOf(c, dot)).map((x) => x.Metadata.message ?? '');
}

/** Branch names of `[ns/]dot` on `c` (master excluded). */
export async function branchesOf(c: Cluster, dot: string): Promise<string[]> {
  const p = parts(dot);
  return c.admin.call('Branches', { Namespace: p.namespace, Name: p.name });
}

/** `ns/dot` of every dot `client` can list. */
export async function listed(client: DotmeshClient): Promise<string[]> {
  const list = await client.call('List', null);
  const out: string[] = [];
  for (const [ns, dots] of Object.entries(list)) for (const name of Object.keys(dots)) out.push(`${ns}/${name}`);
  return out.sort();
}

export async function dotId(c: Cluster, dot: string): Promise<string> {
  const p = parts(dot);
  return c.admin.call('Lookup', { Namespace: p.namespace, Name: p.name, Branch: p.branch });
}

/** The commit ids `dm log` prints for the current dot and branch of `c`'s HOME. */
export async function dmLogIds(c: Cluster): Promise<string[]> {
  const log = await c.ok(['log']);
  return [...log.matchAll(/^commit (\S+)$/gm)].map((m) => m[1]!);
}

export interface TestUser {
  readonly name: string;
  readonly apiKey: string;
  readonly client: DotmeshClient;
}

/** Registers a user on `c` with the admin RPC client (RegisterNewUser) and fetches its API key. */
export async function registerUser(c: Cluster, name: string): Promise<TestUser> {
  const password = `${name}-password-1`;
  const user = await c.admin.call('RegisterNewUser', { Name: name, Email: `${name}@example.com`, Password: password });
  assert.equal(user.Name, name);
  const { ApiKey } = await c.client(name, password).call('GetApiKey', null);
  assert.ok(ApiKey.length > 0);
  return { name, apiKey: ApiKey, client: c.client(name, ApiKey) };
}

/** `dm remote add <remote> <user>@<target>` in `from`'s HOME with the user's key. */
export async function addUserRemote(from: Cluster, remote: string, to: Cluster, user: TestUser): Promise<void> {
  await from.ok(['remote', 'add', remote, to.target(user.name)], { env: { DOTMESH_PASSWORD: user.apiKey } });
}

/** The branch `dm` made for stashed commits: `<branch>-DIVERGED-<time>`. */
export function divergedBranches(branches: readonly string[], branch = 'master'): string[] {
  return branches.filter((b) => b.startsWith(`${branch}-DIVERGED-`));
}

/** How `waitForTransfer` polls, and what a timeout adds to its error (e.g. server logs). */
export interface WaitForTransferOptions {
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
  readonly diagnostics?: () => Promise<string>;
}

/**
 * Polls `GetTransfer` on the transfer's initiator until the transfer ends (`finished` or
 * `error`); returns the final record and every status seen, in order. A transfer still running
 * after `timeoutMs` (default 120 s) is an error naming its id and the statuses it went through.
 */
export async function waitForTransfer(
  client: Pick<DotmeshClient, 'call'>,
  id: string,
  o: WaitForTransferOptions = {},
): Promise<{ final: TransferPollResult; seen: string[] }> {
  const seen: string[] = [];
  const deadline = Date.now() + (o.timeoutMs ?? 120_000);
  while (Date.now() < deadline) {
    const r = await client.call('GetTransfer', id);
    if (seen.at(-1) !== r.Status) seen.push(r.Status);
    if (r.Status === 'finished' || r.Status === 'error') return { final: r, seen };
    await sleep(o.intervalMs ?? 200);
  }
  const extra = o.diagnostics ? `\n${await o.diagnostics()}` : '';
  throw new Error(`transfer ${id} did not end; statuses ${seen.join(' → ')}${extra}`);
}
