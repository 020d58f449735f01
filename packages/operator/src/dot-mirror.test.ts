import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AllDotsAndBranches, DotAndBranches, DotmeshVolume } from '@dotmesh/rpc';
import { dotStatus, humanBytes, nodeNamesById, planMirror, serversWithAllCommits } from './dot-mirror.ts';
import { dotObjectName } from './dot-resources.ts';

const volume = (o: Partial<DotmeshVolume> & { name: string; namespace?: string }): DotmeshVolume => ({
  Id: o.Id ?? `id-${o.name}-${o.Branch ?? ''}`,
  Name: { Namespace: o.namespace ?? 'admin', Name: o.name },
  Branch: o.Branch ?? '',
  Master: o.Master ?? 'node-a',
  SizeBytes: o.SizeBytes ?? 0,
  DirtyBytes: 0,
  CommitCount: o.CommitCount ?? 0,
  ServerStates: {},
  ServerStatuses: o.ServerStatuses ?? {},
  ForkParentId: '',
  ForkParentSnapshotId: '',
});
const dot = (master: DotmeshVolume, others: DotmeshVolume[] | null = null): DotAndBranches => ({
  MasterBranch: master,
  OtherBranches: others,
  Owner: { Id: 'u', Name: 'admin', Email: '' } as DotAndBranches['Owner'],
  Collaborators: [],
  ForkParentId: '',
  ForkParentSnapshotId: '',
});

test('Dot object names: the dot name for admin, namespace.name otherwise, a hashed form for names an object cannot have', () => {
  assert.equal(dotObjectName('admin', 'web-data'), 'web-data');
  assert.equal(dotObjectName('alice', 'db'), 'alice.db');
  const upper = dotObjectName('admin', 'Foo');
  const lower = dotObjectName('admin', 'foo');
  assert.match(upper, /^admin\.foo\.[0-9a-f]{10}$/);
  assert.notEqual(upper, lower, 'Foo and foo are different dots');
  assert.match(dotObjectName('admin', '_x_'), /^admin\.x\.[0-9a-f]{10}$/);
  assert.match(dotObjectName('Bob', '__'), /^bob\.x\.[0-9a-f]{10}$/);
  assert.equal(dotObjectName('admin', 'Foo'), upper, 'stable');
});

test('a dot’s status: branches master first, sizes, the master node by name, replication from the servers’ commit counts', () => {
  const master = volume({
    name: 'web',
    Master: 'id-1',
    SizeBytes: 3 * 1024 * 1024,
    CommitCount: 4,
    ServerStatuses: { 'id-1': 'active, 4 commits', 'id-2': 'inactive, 4 commits', 'id-3': 'inactive, 2 commits' },
  });
  const status = dotStatus(
    dot(master, [
      volume({ name: 'web', Branch: 'zeta', Master: 'id-9', CommitCount: 1 }),
      volume({ name: 'web', Branch: 'alpha', CommitCount: 6 }),
    ]),
    3,
    new Map([['id-1', 'node-one']]),
  );
  assert.equal(status.dot, 'admin/web');
  assert.equal(status.branchNames, 'master,alpha,zeta');
  assert.deepEqual(
    status.branches[2],
    { name: 'zeta', commits: 1, sizeBytes: 0, masterNode: 'id-9' },
    'an id without a node name shown as is',
  );
  assert.equal(status.masterNode, 'node-one');
  assert.equal(status.size, '3.0MiB');
  assert.equal(status.sizeBytes, 3 * 1024 * 1024);
  assert.equal(status.replication, '2/3');
  assert.equal(serversWithAllCommits(volume({ name: 'x', CommitCount: 0, ServerStatuses: { a: 'active, 0 commits' } })), 1);
  assert.equal(serversWithAllCommits(volume({ name: 'x', CommitCount: 1, ServerStatuses: { a: 'gone' } })), 0);
});

test('human sizes', () => {
  assert.equal(humanBytes(0), '0B');
  assert.equal(humanBytes(1023), '1023B');
  assert.equal(humanBytes(1536), '1.5KiB');
  assert.equal(humanBytes(20 * 1024 ** 3), '20GiB');
});

test('node names by id: the server pod at one of a server’s addresses', () => {
  const names = nodeNamesById(
    [
      { Id: 'id-1', Addresses: ['10.0.0.1', '172.17.0.1'] },
      { Id: 'id-2', Addresses: ['10.0.0.9'] },
    ],
    new Map([
      ['172.17.0.1', 'node-a'],
      ['10.0.0.2', 'node-b'],
    ]),
  );
  assert.deepEqual([...names], [['id-1', 'node-a']]);
});

test('the mirror plan: new dots created, changed ones updated, gone ones (and strangers) deleted, equal ones left', () => {
  const all: AllDotsAndBranches = {
    Dots: [
      dot(volume({ name: 'kept', CommitCount: 1 })),
      dot(volume({ name: 'changed', CommitCount: 2 })),
      dot(volume({ name: 'new' })),
    ],
    Servers: [{ Id: 'node-a', Addresses: [] }],
  };
  const names = new Map<string, string>();
  const statusOf = (name: string) => dotStatus(all.Dots.find((d) => d.MasterBranch.Name.Name === name)!, 1, names);
  const plan = planMirror(
    all,
    [
      { metadata: { name: 'kept' }, status: statusOf('kept') },
      { metadata: { name: 'changed' }, status: { ...statusOf('changed'), branchNames: 'edited' } },
      { metadata: { name: 'gone' }, status: statusOf('kept') },
      { metadata: { name: 'made-by-a-user' } },
    ],
    names,
  );
  assert.deepEqual(
    plan.create.map((c) => c.name),
    ['new'],
  );
  assert.deepEqual(
    plan.update.map((c) => [c.name, c.status.branchNames]),
    [['changed', 'master']],
  );
  assert.deepEqual(plan.delete, ['gone', 'made-by-a-user']);
});
