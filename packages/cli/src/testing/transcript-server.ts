import type { CommitItem, DotmeshVolume, TransferPollResult } from '@dotmesh/rpc';
import type { Handler } from './recorder.ts';
import { RpcFailure } from './recorder.ts';

/**
 * Test support: answers like the recorder behind the original client's transcript
 * (packages/server/test/fixtures/dm-0.8.1-transcript.md: same ids, node name, timestamps),
 * keeping just enough state (dots, branches, commits) for the transcript's command sequence. Results are built with the original's field order.
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
/** The transfer ids the recorder handed out, in the transcript's order. */
export const TRANSFER_IDS = [
  '99831ec1-6a48-4501-b785-c92a397f92c6',
  'da51ef27-a558-436e-8e24-2b2568e8aabf',
  'ccaadfe2-b01f-4ca5-9094-dd8a48fa972e',
  'd6f8811d-ac45-46fe-ac02-ea2eb765a17e',
];

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
  let transferNo = 0;
  const transfers = new Map<string, Record<string, unknown>>();
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
    // Transfers finish at once (the recorder moved no data): one finished step of unknown size.
    Transfer: (raw) => {
      const id = TRANSFER_IDS[transferNo] ?? `transfer-${transferNo}`;
      transferNo++;
      transfers.set(id, raw as Record<string, unknown>);
      return id;
    },
    GetTransfer: (raw): TransferPollResult => {
      const id = raw as string;
      const req = transfers.get(id);
      if (!req) throw new RpcFailure(`No such intercluster transfer ${id}`);
      const text = (k: string) => (typeof req[k] === 'string' ? (req[k] as string) : '');
      return {
        TransferRequestId: id,
        Peer: text('Peer'),
        User: text('User'),
        ApiKey: '',
        Direction: text('Direction'),
        LocalNamespace: text('LocalNamespace'),
        LocalName: text('LocalName'),
        LocalBranchName: text('LocalBranchName'),
        RemoteNamespace: text('RemoteNamespace'),
        RemoteName: text('RemoteName'),
        RemoteBranchName: text('RemoteBranchName'),
        FilesystemId: FS_IDS['admin/foo'] ?? '',
        InitiatorNodeId: NODE,
        PeerNodeId: NODE,
        StartingCommit: '',
        TargetCommit: '',
        Index: 1,
        Total: 1,
        Status: 'finished',
        NanosecondsElapsed: 1_000_000,
        Size: 0,
        Sent: 0,
        Message: 'remote already up-to-date, nothing to do',
      };
    },
    Procure: (raw) => `/var/dotmesh/mnt/${(raw as P).Namespace}/${(raw as P).Name}/${(raw as P).Subdot}`,
  };
}
