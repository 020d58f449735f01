import { isDeepStrictEqual } from 'node:util';
import type { AllDotsAndBranches, DotAndBranches, DotmeshVolume, ServerInfo } from '@dotmesh/rpc';
import { type DotBranchStatus, type DotObject, type DotStatus, dotObjectName } from './dot-resources.ts';

/**
 * What the Dot objects should say, from a server's `AllDotsAndBranches` (the store's view), and
 * the changes that make the existing mirrors say it: a Dot object for each dot, its status
 * replaced when it differs (a user's edit is undone), and mirrors of dots that are gone deleted.
 * Pure: the API calls are dot-mirror-loop.ts's.
 */
export interface MirrorPlan {
  /** New Dot objects: name and the status to write once made. */
  readonly create: readonly { readonly name: string; readonly status: DotStatus }[];
  /** Existing ones whose status differs. */
  readonly update: readonly { readonly name: string; readonly status: DotStatus }[];
  readonly delete: readonly string[];
}

/**
 * The status of one dot. `nodeNames` maps Dotmesh node ids to Kubernetes node names (from the
 * server pods' addresses); an id without a name is shown as is.
 */
export function dotStatus(dot: DotAndBranches, serverCount: number, nodeNames: ReadonlyMap<string, string>): DotStatus {
  const master = dot.MasterBranch;
  const node = (id: string) => nodeNames.get(id) ?? id;
  const branch = (v: DotmeshVolume): DotBranchStatus => ({
    name: v.Branch === '' ? 'master' : v.Branch,
    commits: v.CommitCount,
    sizeBytes: v.SizeBytes,
    masterNode: node(v.Master),
  });
  const others = [...(dot.OtherBranches ?? [])].sort((a, b) => a.Branch.localeCompare(b.Branch)).map(branch);
  const branches = [branch(master), ...others];
  return {
    dot: `${master.Name.Namespace}/${master.Name.Name}`,
    dotmeshNamespace: master.Name.Namespace,
    dotmeshName: master.Name.Name,
    id: master.Id,
    branchNames: branches.map((b) => b.name).join(','),
    branches,
    sizeBytes: master.SizeBytes,
    size: humanBytes(master.SizeBytes),
    masterNode: node(master.Master),
    replication: `${serversWithAllCommits(master)}/${Math.max(serverCount, Object.keys(master.ServerStatuses).length)}`,
  };
}

/**
 * The servers that hold every commit of the branch: those whose status (`"<state>, N commits"`)
 * counts the master's commits.
 */
export function serversWithAllCommits(v: DotmeshVolume): number {
  let n = 0;
  for (const text of Object.values(v.ServerStatuses)) {
    const m = /(\d+) commits?\b/.exec(text);
    if (m && Number(m[1]) >= v.CommitCount) n++;
  }
  return n;
}

/** `n` bytes for people, without a space (a column of `kubectl get`): `1.5GiB`, `20GiB`, `512B`. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v}B` : `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[u]}`;
}

/** The plan for the mirrors `existing` (the Dot objects the operator made) to show `all`. */
export function planMirror(
  all: AllDotsAndBranches,
  existing: readonly DotObject[],
  nodeNames: ReadonlyMap<string, string>,
): MirrorPlan {
  const wanted = new Map<string, DotStatus>();
  for (const dot of all.Dots) {
    const status = dotStatus(dot, all.Servers.length, nodeNames);
    wanted.set(dotObjectName(status.dotmeshNamespace, status.dotmeshName), status);
  }
  const have = new Map(existing.map((o) => [o.metadata.name ?? '', o]));
  const create: { name: string; status: DotStatus }[] = [];
  const update: { name: string; status: DotStatus }[] = [];
  for (const [name, status] of wanted) {
    const current = have.get(name);
    if (!current) create.push({ name, status });
    else if (!isDeepStrictEqual(current.status ?? null, status)) update.push({ name, status });
  }
  const remove = [...have.keys()].filter((name) => !wanted.has(name));
  return { create, update, delete: remove };
}

/** Dotmesh node id → Kubernetes node name: the node of the server pod at one of the server's addresses. */
export function nodeNamesById(servers: readonly ServerInfo[], nodeByAddress: ReadonlyMap<string, string>): Map<string, string> {
  const names = new Map<string, string>();
  for (const s of servers) {
    const name = s.Addresses.map((a) => nodeByAddress.get(a)).find((n) => n);
    if (name) names.set(s.Id, name);
  }
  return names;
}
