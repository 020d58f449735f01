import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BranchInfo, type DotShowResult, renderDotShow, renderDotShowScripting } from './commands/dot-show.ts';
import { type ListResult, renderList } from './commands/list.ts';
import { renderLog } from './commands/log.ts';
import { renderRemotes } from './commands/remote.ts';
import { formatTimestampNs, prettySize, tabwrite } from './format.ts';

describe('sizes', () => {
  it('pretty-prints like the original', () => {
    assert.equal(prettySize(0), '-');
    assert.equal(prettySize(1), '0.00 kiB');
    assert.equal(prettySize(1536), '1.50 kiB');
    assert.equal(prettySize(1024 * 1024 - 1), '1024.00 kiB');
    assert.equal(prettySize(5 * 1024 * 1024), '5.00 MiB');
    assert.equal(prettySize(10 * 2 ** 30), '10.00 GiB');
    assert.equal(prettySize(3 * 2 ** 40), '3072.00 GiB');
  });
});

describe('tables', () => {
  it('aligns like Go tabwriter (minwidth 3, padding 2), last cell unpadded', () => {
    assert.deepEqual(
      tabwrite([
        ['a', 'bb', 'c'],
        ['', 'b', 'ccc'],
      ]),
      ['a  bb  c', '   b   ccc'],
    );
  });

  const dot = (over: Partial<ListResult['dots'][number]>) => ({
    namespace: 'admin',
    name: 'foo',
    dot: 'foo',
    id: 'i',
    current: false,
    branch: 'master',
    server: 'node1',
    containers: [],
    sizeBytes: 0,
    commitCount: 0,
    dirtyBytes: 0,
    ...over,
  });

  it('renders dm list with sizes, containers and the current marker', () => {
    const data: ListResult = {
      currentRemote: 'local',
      dots: [
        dot({ current: true, sizeBytes: 2 * 1024 * 1024, dirtyBytes: 512, commitCount: 3, containers: ['web', 'db'] }),
        dot({ namespace: 'ns2', name: 'bar', dot: 'ns2/bar', branch: 'b1' }),
      ],
    };
    assert.deepEqual(renderList(data, false), [
      '  DOT      BRANCH  SERVER  CONTAINERS  SIZE      COMMITS  DIRTY',
      '* foo      master  node1   web,db      2.00 MiB  3        0.50 kiB',
      '  ns2/bar  b1      node1               -         0        -',
    ]);
    assert.deepEqual(renderList(data, true), ['foo\tmaster\tnode1\tweb,db\t2097152\t3\t512', 'ns2/bar\tb1\tnode1\t\t0\t0\t0']);
    const stale: ListResult = {
      currentRemote: 'local',
      dots: [dot({ branch: 'gone', sizeBytes: null, commitCount: null, dirtyBytes: null })],
    };
    assert.deepEqual(renderList(stale, false)[1], '  foo  gone    node1               ?     ?        ?');
    assert.deepEqual(renderList(stale, true), ['foo\tgone\tnode1\t\t?\t?\t?']);
  });
});

describe('log', () => {
  it('prints author, a readable date, other metadata sorted, then the message', () => {
    const lines = renderLog({
      namespace: 'admin',
      name: 'foo',
      branch: 'master',
      commits: [
        {
          id: 'c1',
          metadata: {
            timestamp: '1795628812414000000',
            zeta: 'z',
            author: 'admin',
            message: 'hello',
            apples: 'green',
            empty: '',
          },
        },
      ],
    });
    assert.deepEqual(lines, [
      'commit c1',
      'author: admin',
      `date: ${formatTimestampNs('1795628812414000000')}`,
      'apples: green',
      'empty: ',
      'zeta: z',
      '',
      '    hello',
      '',
    ]);
  });

  it('formats commit dates in the local zone, git ISO style; anything else as it is', () => {
    const tz = process.env.TZ;
    try {
      process.env.TZ = 'UTC';
      assert.equal(formatTimestampNs('1795628812414000000'), '2026-11-25 17:46:52 +0000');
      process.env.TZ = 'Asia/Kolkata';
      assert.equal(formatTimestampNs('1795628812414000000'), '2026-11-25 23:16:52 +0530');
      process.env.TZ = 'America/St_Johns';
      assert.equal(formatTimestampNs('1795628812414000000'), '2026-11-25 14:16:52 -0330');
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
    assert.equal(formatTimestampNs('yesterday'), 'yesterday');
    assert.equal(formatTimestampNs(''), '');
  });
});

describe('dot show', () => {
  const data: DotShowResult = {
    namespace: 'admin',
    name: 'foo',
    masterBranchId: 'm-id',
    selected: true,
    commitCount: 2,
    sizeBytes: 2048,
    dirtyBytes: 1024,
    currentBranch: 'master',
    branches: [
      {
        name: 'b1',
        id: 'b-id',
        current: false,
        commitCount: 3,
        sizeBytes: 4096,
        dirtyBytes: 0,
        containers: [],
        replication: null,
        replicationError: 'boom',
      },
      {
        name: 'master',
        id: 'm-id',
        current: true,
        commitCount: 2,
        sizeBytes: 2048,
        dirtyBytes: 1024,
        containers: ['web', 'db'],
        replication: [
          { server: 'n1', master: true, status: 'active, 2 commits', missingCommits: [] },
          { server: 'n2', master: false, status: 'unknown', missingCommits: ['c1', 'c2'] },
        ],
      },
    ],
    upstreams: [{ remote: 'hub', namespace: 'alice', name: 'foo' }],
  };

  it('renders the human form', () => {
    assert.deepEqual(renderDotShow(data), [
      'Dot admin/foo:',
      'Master branch ID: m-id',
      'Dot is currently selected.',
      'Commits: 2',
      'Dot size: 2.00 kiB (1.00 kiB dirty)',
      'Branches:',
      '  b1 (b-id)',
      '   Replication Status:',
      'unable to fetch replication status (boom), proceeding...',
      '* master (m-id) (containers: web,db)',
      '   Replication Status:',
      '    server n1 [MASTER] (status: active, 2 commits) is up to date',
      '    server n2          (status: unknown) is missing [c1 c2]',
      'Tracks dot alice/foo on remote hub',
    ]);
  });

  it('shows unknown figures as ? (the current branch of the config does not exist)', () => {
    const stale = { ...data, currentBranch: 'gone', commitCount: null, sizeBytes: null, dirtyBytes: null };
    assert.deepEqual(renderDotShow(stale).slice(3, 6), ['Current branch: gone', 'Commits: ?', 'Dot size: ?']);
    assert.deepEqual(renderDotShowScripting(stale).slice(4, 8), ['commitCount\t?', 'size\t?', 'dirty\t?', 'currentBranch\tgone']);
  });

  it('renders the -H form', () => {
    assert.deepEqual(renderDotShowScripting(data), [
      'namespace\tadmin',
      'name\tfoo',
      'masterBranchId\tm-id',
      'selected',
      'commitCount\t2',
      'size\t2048',
      'dirty\t1024',
      'currentBranch\tmaster',
      'branch\tb-id\tb1',
      'unable to fetch replication status (boom), proceeding...',
      'branch\tm-id\tmaster',
      'container\tmaster\tweb',
      'container\tmaster\tdb',
      'latency\tn1\tmaster\tactive, 2 commits\t',
      'latency\tn2\treplica\tunknown\tc1\tc2',
      'defaultUpstreamDot\thub\talice/foo',
    ]);
  });

  it('says when a branch’s master node is gone and what the branch waits for', () => {
    const status = 'gone (its lease expired): the branch waits for failover to the live node holding its newest commit';
    const [b1, master] = data.branches as [BranchInfo, BranchInfo];
    const gone: DotShowResult = {
      ...data,
      branches: [b1, { ...master, replication: null, masterGone: { node: 'n9', status } }],
    };
    assert.deepEqual(renderDotShow(gone).slice(9, 11), [
      '* master (m-id) (containers: web,db)',
      `   Master node n9 is ${status}`,
    ]);
    assert.ok(renderDotShowScripting(gone).includes('masterGone\tmaster\tn9'));
  });
});

describe('remotes', () => {
  it('lists names, or with -v scheme://user@host:port and the current marker', () => {
    const data = {
      remotes: [
        {
          name: 'local',
          kind: 'dotmesh' as const,
          current: true,
          user: 'admin',
          hostname: '127.0.0.1',
          port: 32607,
          scheme: 'http' as const,
          trust: null,
        },
        {
          name: 'tls',
          kind: 'dotmesh' as const,
          current: false,
          user: 'admin',
          hostname: '::1',
          port: 32606,
          scheme: 'https' as const,
        },
        { name: 'nop', kind: 'dotmesh' as const, current: false, user: 'bob', hostname: 'h', port: 0, scheme: null },
        { name: 's3', kind: 's3' as const, current: false, keyId: 'AKIA' },
      ],
    };
    assert.deepEqual(renderRemotes(data, false), ['local', 'tls', 'nop', 's3']);
    assert.deepEqual(renderRemotes(data, true), [
      '* local\thttp://admin@127.0.0.1:32607',
      '  tls\thttps://admin@[::1]:32606',
      '  nop\tbob@h (no port: tries https:443, http:80, http:32607)',
      's3\tAKIA',
    ]);
  });
});
