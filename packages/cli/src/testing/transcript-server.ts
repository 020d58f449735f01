import type { CommitItem, DotmeshVolume } from '@dotmesh/rpc';
import type { Handler } from './recorder.ts';
import { RpcFailure } from './recorder.ts';

/**
 * Test support: answers like the recorder behind fixtures/dm-0.8.1-transcript.md (same ids,
 * node name, timestamps), keeping just enough state (dots, branches, commits) for the
 * transcript's command sequence. Results are built with the original's field order.
 */
const COMMIT_IDS = [
  'd6677939-de29-40de-8b33-cacfeb58367a',
  '25270661-e992-45ec-900b-7b22f8ef43d3',
  '7f6848a8-91dc-443a-a2a3-4437ac7f7a4a',
];
const TIMESTAMPS = ['1795628812414000000', '1795628812471000000', '1795628812760000000'];
const FS_IDS: Record<string, string> = {
  'admin/foo': '286e4f1b-eed1-4e55-a849-f4159fdb2638',
  'admin/foo@b1': '08ebd658-9a57-4e7a-a931-9edd0b315637',
};
export const NODE = 'fake-node-1';

interface Branch {
  id: string;
  commits: CommitItem[];
}
interface Dot {
  namespace: string;
  name: string;
  branches: Map<string, Branch>;
}

type P = Record<string, string>;

export function transcriptHandlers(): Record<string, Handler> {
  const namespaces = new Map<string, Map<string, Dot>>();
  let commitNo = 0;
  let fsNo = 0;
  const fsId = (key: string) => FS_IDS[key] ?? `00000000-0000-4000-8000-${String(++fsNo).padStart(12, '0')}`;
  const dot = (p: P): Dot => {
    const d = namespaces.get(p.Namespace ?? '')?.get(p.Name ?? '');
    if (!d) throw new RpcFailure(`No such filesystem named '${p.Namespace}/${p.Name}'`, { code: 'DOT_NOT_FOUND' });
    return d;
  };
  const branch = (d: Dot, name: string): Branch => {
    const b = d.branches.get(name);
    if (!b) throw new RpcFailure(`No clone named '${name}'`, { code: 'BRANCH_NOT_FOUND' });
    return b;
  };
  const volume = (d: Dot, name: string): DotmeshVolume => ({
    Id: branch(d, name).id,
    Name: { Namespace: d.namespace, Name: d.name },
    Branch: name,
    Master: NODE,
    SizeBytes: 0,
    DirtyBytes: 0,
    CommitCount: branch(d, name).commits.length,
    ServerStates: {},
    ServerStatuses: {},
    ForkParentId: '',
    ForkParentSnapshotId: '',
  });
  const byId = (id: string): [Dot, string] => {
    for (const ns of namespaces.values())
      for (const d of ns.values()) for (const [n, b] of d.branches) if (b.id === id) return [d, n];
    throw new RpcFailure(`No such filesystem id ${id}`);
  };
  const list = <T>(f: (d: Dot) => T) =>
    Object.fromEntries([...namespaces].map(([ns, dots]) => [ns, Object.fromEntries([...dots].map(([n, d]) => [n, f(d)]))]));

  return {
    Ping: () => true,
    Version: () => ({
      installed_version: 'fake-0.0.0',
      current_version: 'fake-0.0.0',
      current_release_date: 0,
      current_download_url: '',
      current_changelog_url: '',
      project_website: '',
      outdated: false,
    }),
    List: () => list((d) => volume(d, '')),
    ListWithContainers: () => list((d) => ({ Volume: volume(d, ''), Containers: [] })),
    Create: (raw) => {
      const p = raw as P;
      const ns = namespaces.get(p.Namespace ?? '') ?? new Map<string, Dot>();
      namespaces.set(p.Namespace ?? '', ns);
      const key = `${p.Namespace}/${p.Name}`;
      ns.set(p.Name ?? '', {
        namespace: p.Namespace ?? '',
        name: p.Name ?? '',
        branches: new Map([['', { id: fsId(key), commits: [] }]]),
      });
      return true;
    },
    Delete: (raw) => {
      const d = dot(raw as P);
      namespaces.get(d.namespace)?.delete(d.name);
      return true;
    },
    Commit: (raw) => {
      const p = raw as P & { Metadata: Record<string, string> };
      const i = commitNo++;
      const id = COMMIT_IDS[i] ?? `commit-${i}`;
      const metadata = { author: 'admin', message: p.Message ?? '', timestamp: TIMESTAMPS[i] ?? '0', ...p.Metadata };
      branch(dot(p), p.Branch ?? '').commits.push({ Id: id, Metadata: metadata });
      return id;
    },
    Commits: (raw) => branch(dot(raw as P), (raw as P).Branch ?? '').commits,
    Branches: (raw) => [...dot(raw as P).branches.keys()].filter((b) => b !== '').sort(),
    Branch: (raw) => {
      const p = raw as P;
      const d = dot(p);
      const source = branch(d, p.SourceBranch === 'master' ? '' : (p.SourceBranch ?? ''));
      const upTo = source.commits.findIndex((c) => c.Id === p.SourceCommitId);
      const key = `${p.Namespace}/${p.Name}@${p.NewBranchName}`;
      d.branches.set(p.NewBranchName ?? '', { id: fsId(key), commits: source.commits.slice(0, upTo + 1) });
      return true;
    },
    SwitchContainers: () => true,
    Rollback: (raw) => {
      const p = raw as P;
      const b = branch(dot(p), p.Branch ?? '');
      b.commits = b.commits.slice(0, b.commits.findIndex((c) => c.Id === p.SnapshotId) + 1);
      return true;
    },
    Lookup: (raw) => branch(dot(raw as P), (raw as P).Branch ?? '').id,
    Get: (raw) => {
      const [d, name] = byId(raw as string);
      return volume(d, name);
    },
    Containers: () => [],
    GetReplicationLatencyForBranch: () => ({}),
    Procure: (raw) => `/var/dotmesh/mnt/${(raw as P).Namespace}/${(raw as P).Name}/${(raw as P).Subdot}`,
  };
}
