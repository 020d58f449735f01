import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CommitItem } from '@dotmesh/rpc';
import { type DotmeshNode, type DotmeshTestCluster, runCommand, waitFor } from '@dotmesh/testkit';

/**
 * Small steps the multi-node tests share. Data is written where a container would write it:
 * into the host path `Procure` returns on a node (the test process shares the servers' mount
 * namespace); it is checked by the SHA-256 of real files.
 */
export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

/** The host path of `admin/<name>[@branch]`'s default subdot on `node` (created if missing; moved there if another node masters it). */
export function procure(node: DotmeshNode, name: string): Promise<string> {
  return node.admin.call('Procure', { Namespace: 'admin', Name: name, Subdot: '' });
}

/** Writes `bytes` random bytes to `file` in the dot through `node`; returns their SHA-256. */
export async function writeRandom(node: DotmeshNode, name: string, file: string, bytes = 256 * 1024): Promise<string> {
  const data = randomBytes(bytes);
  await writeFile(join(await procure(node, name), file), data);
  return sha256(data);
}

export async function fileHash(path: string): Promise<string> {
  return sha256(await readFile(path));
}

export async function commitsOf(node: DotmeshNode, name: string, branch = ''): Promise<CommitItem[]> {
  return node.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: branch });
}

export async function commitIds(node: DotmeshNode, name: string, branch = ''): Promise<string[]> {
  return (await commitsOf(node, name, branch)).map((c) => c.Id);
}

export function commit(node: DotmeshNode, name: string, message: string, branch = ''): Promise<string> {
  return node.admin.call('Commit', { Namespace: 'admin', Name: name, Branch: branch, Message: message, Metadata: {} });
}

export function lookup(node: DotmeshNode, name: string, branch = ''): Promise<string> {
  return node.admin.call('Lookup', { Namespace: 'admin', Name: name, Branch: branch });
}

/** The master node `node` names for `admin/<name>`'s master branch (List's Master), or undefined. */
export async function listedMaster(node: DotmeshNode, name: string): Promise<string | undefined> {
  return (await node.admin.call('List', null)).admin?.[name]?.Master;
}

/** The master key of branch `fsId` in etcd (`filesystems/masters/<fsId>`): its node id, or undefined. */
export async function masterKey(cluster: DotmeshTestCluster, fsId: string): Promise<string | undefined> {
  const [kv] = await cluster.etcd.keys(`dotmesh.io/filesystems/masters/${fsId}`);
  return kv === undefined ? undefined : (JSON.parse(kv.value) as { node_id: string }).node_id;
}

/** The nodes advertising an active copy of branch `fsId` (`servers/states/<node>/<fsId>`): its master's alone, normally. */
export async function activeCopies(cluster: DotmeshTestCluster, fsId: string): Promise<string[]> {
  return (await cluster.etcd.keys('dotmesh.io/servers/states/'))
    .filter((kv) => kv.key.endsWith(`/${fsId}`))
    .filter((kv) => (JSON.parse(kv.value) as { state: { state: string } }).state.state === 'active')
    .map((kv) => kv.key.split('/').at(-2) ?? '');
}

/** Whether `node`'s pool holds a volume (a dot's master branch or another branch) with this id. */
export function holdsVolume(node: DotmeshNode, fsId: string): boolean {
  return existsSync(join(node.dir, 'mnt', 'fs', fsId));
}

/** Waits until every node names `expected` as the master of `admin/<name>` (the views follow etcd). */
export async function untilMasterEverywhere(nodes: readonly DotmeshNode[], name: string, expected: string): Promise<void> {
  await waitFor(async () => (await Promise.all(nodes.map((n) => listedMaster(n, name)))).every((m) => m === expected), {
    timeoutMs: 20_000,
    what: `every node to name ${expected} as the master of ${name}`,
  });
}

/**
 * Keys that live nodes rewrite on their own, again and again (sizes, containers, pool space):
 * left out when a test checks that nothing in etcd changed.
 */
export function rewrittenByLiveNodes(key: string): boolean {
  return /\/filesystems\/(dirty|containers)\/|\/servers\/pools\//.test(key);
}

/** A test body whose failure carries the tail of every node's log. */
export function logged(cluster: () => DotmeshTestCluster, body: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await body();
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${await cluster().logs(12_000)}`, { cause: e });
    }
  };
}

/** The commits `node` advertises holding in volume `fsId` (its own keys in etcd). */
export async function heldOn(cluster: DotmeshTestCluster, node: DotmeshNode, fsId: string): Promise<Set<string>> {
  const prefix = `dotmesh.io/servers/snapshots/${node.nodeId}/${fsId}/`;
  return new Set((await cluster.etcd.keys(prefix)).map((kv) => kv.key.slice(prefix.length)));
}

/** A file of commit `commitId` as `node`'s pool holds it (its own snapshot, unmounted on a replica). */
export function committedFile(node: DotmeshNode, fsId: string, commitId: string, file: string): string {
  return join(node.dir, 'mnt', 'fs', fsId, 'commits', commitId, commitId, '__default__', file);
}

/** The host path of branch `fsId`'s live subvolume in `node`'s pool. */
export const livePath = (node: DotmeshNode, fsId: string): string => join(node.dir, 'mnt', 'fs', fsId, 'live');

/** `btrfs property get <live> ro`: whether the kernel makes the live data of `fsId` on `node` read-only. */
export async function readOnly(node: DotmeshNode, fsId: string): Promise<boolean> {
  const { stdout } = await runCommand('btrfs', ['property', 'get', '-ts', livePath(node, fsId), 'ro']);
  return stdout.trim() === 'ro=true';
}

/** Every link of `node`'s host down (cut off from the other hosts and etcd) or up again. */
export async function setLinks(node: DotmeshNode, state: 'up' | 'down'): Promise<void> {
  for (const dev of node.host.devices) await node.host.exec('ip', ['link', 'set', dev, state]);
}

/** The `-DIVERGED-` branches of `admin/<name>` as `node` lists them (`dm branch`'s call). */
export async function divergedBranches(node: DotmeshNode, name: string): Promise<string[]> {
  const branches: string[] = await node.admin.call('Branches', { Namespace: 'admin', Name: name });
  return branches.filter((b) => b.includes('-DIVERGED-'));
}

/** Waits until every node lists exactly one -DIVERGED- branch of `admin/<name>`; returns its name. */
export async function untilDivergedEverywhere(nodes: readonly DotmeshNode[], name: string): Promise<string> {
  let found = '';
  await waitFor(
    async () => {
      const lists = await Promise.all(nodes.map((n) => divergedBranches(n, name)));
      const first = lists[0]?.[0];
      if (first === undefined || !lists.every((l) => l.length === 1 && l[0] === first)) return false;
      found = first;
      return true;
    },
    { timeoutMs: 90_000, intervalMs: 200, what: `every node to list one -DIVERGED- branch of ${name}` },
  );
  return found;
}
