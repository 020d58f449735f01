import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { makeTempDir } from '@dotmesh/testkit';
import { loadConfig, saveConfig } from './config.ts';
import { type Handler, type Recorder, RpcFailure, startRecorder } from './testing/recorder.ts';
import { runDm } from './testing/run-dm.ts';

/**
 * What dm prints tells the truth: the figures of the branch it names, uncommitted changes a
 * new branch leaves behind, git's commit references, how a remote is reached. Against a
 * recorder that answers like a server would.
 */
const MIB = 1024 * 1024;

const volume = (id: string, over: Record<string, unknown> = {}) => ({
  Id: id,
  Name: { Namespace: 'admin', Name: 'foo' },
  Branch: '',
  Master: 'node-1',
  SizeBytes: 0,
  DirtyBytes: 0,
  CommitCount: 1,
  ServerStates: {},
  ServerStatuses: {},
  ForkParentId: '',
  ForkParentSnapshotId: '',
  ...over,
});

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('dm output tells the truth', () => {
  let recorder: Recorder;
  let home: string;
  const handlers: Record<string, Handler> = {};
  const dm = (args: string[], env: Record<string, string> = {}) => runDm(args, { HOME: home, ...env });
  const configPath = () => join(home, '.dotmesh', 'config');
  const setBranch = async (dot: string, branch: string) => {
    const c = await loadConfig(configPath());
    const local = c.Remotes.local!;
    local.CurrentBranches = { ...(local.CurrentBranches ?? {}), [dot]: branch };
    await saveConfig(configPath(), c);
  };
  const methods = () => recorder.take().map((r) => r.method);

  before(async () => {
    recorder = await startRecorder(new Proxy(handlers, { get: (t, k: string) => t[k] }) as Record<string, Handler>);
  });
  after(() => recorder.close());
  beforeEach(async () => {
    home = await makeTempDir('cli-truth');
    for (const k of Object.keys(handlers)) delete handlers[k];
    handlers.Ping = () => true;
    const added = await dm(['remote', 'add', 'local', `admin@127.0.0.1:${recorder.port}`], { DOTMESH_PASSWORD: 'k' });
    assert.equal(added.code, 0, added.stderr);
    // Two dots: foo on branch experiment (20 MiB uncommitted there, master clean), bar on master.
    const masterFoo = volume('foo-master', { SizeBytes: 4 * MIB, CommitCount: 4 });
    const experiment = volume('foo-exp', { Branch: 'experiment', SizeBytes: 24 * MIB, DirtyBytes: 20 * MIB, CommitCount: 2 });
    handlers.List = () => ({ admin: { foo: masterFoo, bar: volume('bar-master') } });
    handlers.ListWithContainers = () => ({
      admin: { foo: { Volume: masterFoo, Containers: [] }, bar: { Volume: volume('bar-master'), Containers: [] } },
    });
    handlers.Lookup = (p) => {
      const { Name, Branch } = p as { Name: string; Branch: string };
      if (Name === 'foo' && Branch === 'experiment') return 'foo-exp';
      if (Branch === '') return `${Name}-master`;
      throw new RpcFailure(`No branch ${Branch} of admin/${Name}`, { code: 'BRANCH_NOT_FOUND' });
    };
    handlers.Get = (id) => (id === 'foo-exp' ? experiment : id === 'foo-master' ? masterFoo : volume(String(id)));
    handlers.Branches = (p) => ((p as { Name: string }).Name === 'foo' ? ['experiment'] : []);
    handlers.Containers = () => [];
    handlers.GetReplicationLatencyForBranch = () => ({ 'node-1': [] });
    const c = await loadConfig(configPath());
    c.Remotes.local!.CurrentVolume = 'foo';
    await saveConfig(configPath(), c);
    recorder.take();
  });
  afterEach(() => rm(home, { recursive: true, force: true }));

  describe('dm list and dm dot show: the figures of the current branch', () => {
    it('dm list shows the size, commits and dirty bytes of each dot’s current branch', async () => {
      await setBranch('foo', 'experiment');
      const run = await dm(['list']);
      assert.equal(run.code, 0, run.stderr);
      const rows = run.stdout.split('\n');
      assert.match(rows.find((r) => r.startsWith('* foo')) ?? '', /^\* foo +experiment +node-1 +24\.00 MiB +2 +20\.00 MiB$/);
      assert.match(rows.find((r) => r.startsWith('  bar')) ?? '', /^ {2}bar +master +node-1 +- +1 +-$/);
      assert.deepEqual(methods(), ['ListWithContainers', 'Lookup', 'Get'], 'one Lookup+Get for the dot off master');
      const json = JSON.parse((await dm(['--json', 'list'])).stdout) as { dots: Record<string, unknown>[] };
      assert.deepEqual(
        json.dots.map((d) => [d.dot, d.branch, d.sizeBytes, d.commitCount, d.dirtyBytes]),
        [
          ['bar', 'master', 0, 1, 0],
          ['foo', 'experiment', 24 * MIB, 2, 20 * MIB],
        ],
      );
      assert.equal((await dm(['list', '-H'])).stdout.split('\n')[1], `foo\texperiment\tnode-1\t\t${24 * MIB}\t2\t${20 * MIB}`);
    });

    it('a current branch the server does not have shows ? and a warning, not another branch’s figures', async () => {
      await setBranch('bar', 'gone');
      const run = await dm(['list']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /\n {2}bar +gone +node-1 +\? +\? +\?\n/);
      assert.match(run.stderr, /^warning: the current branch of admin\/bar in the config, gone, does not exist on this remote/);
    });

    it('dm dot show names the current branch and shows its figures; --json has every branch’s', async () => {
      await setBranch('foo', 'experiment');
      const run = await dm(['dot', 'show']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(
        run.stdout,
        /^Dot admin\/foo:\nMaster branch ID: foo-master\nDot is currently selected\.\nCurrent branch: experiment\nCommits: 2\nDot size: 24\.00 MiB \(20\.00 MiB dirty\)\n/,
      );
      assert.match(
        (await dm(['dot', 'show', '-H'])).stdout,
        /\ncommitCount\t2\nsize\t25165824\ndirty\t20971520\ncurrentBranch\texperiment\n/,
      );
      const json = JSON.parse((await dm(['--json', 'dot', 'show'])).stdout) as {
        commitCount: number;
        branches: { name: string; commitCount: number; dirtyBytes: number }[];
      };
      assert.equal(json.commitCount, 2);
      assert.deepEqual(
        json.branches.map((b) => [b.name, b.commitCount, b.dirtyBytes]),
        [
          ['experiment', 2, 20 * MIB],
          ['master', 4, 0],
        ],
      );
      await setBranch('foo', 'master');
      const onMaster = await dm(['dot', 'show']);
      assert.match(
        onMaster.stdout,
        /^Dot admin\/foo:\nMaster branch ID: foo-master\nDot is currently selected\.\nCommits: 4\nDot size: 4\.00 MiB \(all clean\)\n/,
      );
    });
  });

  describe('dm checkout -b with uncommitted changes', () => {
    beforeEach(() => {
      handlers.Branches = () => [];
      handlers.Commits = () => [
        { Id: 'c1', Metadata: {} },
        { Id: 'c2', Metadata: {} },
      ];
      handlers.Lookup = () => 'foo-master';
      handlers.Get = () => volume('foo-master', { DirtyBytes: 20 * MIB });
      handlers.Branch = () => true;
      handlers.SwitchContainers = () => true;
    });

    it('warns that they stay on the branch left, and says how to take them along', async () => {
      const run = await dm(['checkout', '-b', 'exp']);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(
        run.stderr,
        'warning: 20.00 MiB of uncommitted changes stayed on branch master (`dm checkout master` shows them): exp starts from the last commit of master. To take uncommitted changes along, commit them before `dm checkout -b`, or pass --carry.\n',
      );
      assert.equal((await loadConfig(configPath())).Remotes.local!.CurrentBranches?.foo, 'exp');
      handlers.Get = () => volume('foo-master');
      assert.equal((await dm(['checkout', '-b', 'exp2'])).stderr, '', 'no warning when clean');
      assert.match((await dm(['--json', 'checkout', '-b', 'exp3'])).stdout, /"uncommittedBytes": 0/);
    });

    it('--carry commits them, branches from that commit, then rolls the old branch back to its HEAD', async () => {
      const gets = [volume('foo-master', { DirtyBytes: 20 * MIB }), volume('foo-master')];
      handlers.Get = () => gets.shift();
      handlers.Commit = () => 'carried';
      handlers.Rollback = () => true;
      const run = await dm(['checkout', '-b', 'exp', '--carry']);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, '');
      const seen = recorder.take();
      assert.deepEqual(
        seen.map((r) => r.method),
        [
          'Branches',
          'Commits',
          'Lookup',
          'Get',
          'Commit',
          'Branch',
          'SwitchContainers',
          'Containers',
          'Lookup',
          'Get',
          'Rollback',
        ],
      );
      const params = (m: string) => seen.find((r) => r.method === m)?.params as Record<string, unknown>;
      assert.equal(params('Commit').Branch, '');
      assert.equal(params('Branch').SourceCommitId, 'carried');
      assert.deepEqual(params('Rollback'), { Branch: '', Name: 'foo', Namespace: 'admin', SnapshotId: 'c2' });
    });

    it('--carry leaves the old branch alone when it was written to meanwhile, and says so', async () => {
      handlers.Commit = () => 'carried';
      handlers.Rollback = () => assert.fail('no rollback of a branch written to after the carry');
      const run = await dm(['--json', 'checkout', '-b', 'exp', '--carry']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(
        run.stderr,
        /^warning: the uncommitted changes of master were carried to exp, but master keeps them too, as its commit carried \(it was written to meanwhile\); to drop them there: dm checkout master && dm reset --hard HEAD\^\n$/,
      );
      assert.deepEqual(JSON.parse(run.stdout).carried, { commitId: 'carried', keptOn: 'master' });
    });

    it('--carry without -b is a usage error', async () => {
      const run = await dm(['checkout', 'exp', '--carry']);
      assert.equal(run.code, 2);
      assert.match(run.stderr, /--carry goes with -b/);
      assert.deepEqual(methods(), []);
    });
  });

  describe('dm diff takes commit references as git does', () => {
    let diffs: Record<string, unknown>[] = [];
    beforeEach(() => {
      diffs = [];
      handlers.Commits = (p) =>
        ((p as { Branch: string }).Branch === 'exp' ? ['a', 'b', 'x'] : ['a', 'b', 'c', 'd']).map((Id) => ({ Id, Metadata: {} }));
      handlers.Branches = () => ['exp'];
      handlers.DiffCommits = (p) => {
        diffs.push(p as Record<string, unknown>);
        return { Files: [] };
      };
    });
    const cases: [string[], string, string][] = [
      [['HEAD~2'], 'b', ''],
      [['HEAD^^'], 'b', ''],
      [['HEAD~1^'], 'b', ''],
      [['exp'], 'x', ''],
      [['exp~1', 'master'], 'b', 'd'],
      [['master~3', 'HEAD'], 'a', 'd'],
      [['x~1'], 'b', ''],
      [['c'], 'c', ''],
      [['other-branch-commit'], 'other-branch-commit', ''],
    ];
    for (const [args, from, to] of cases) {
      it(`dm diff ${args.join(' ')} → ${from}..${to || 'working copy'}`, async () => {
        const run = await dm(['diff', ...args]);
        assert.equal(run.code, 0, run.stderr);
        assert.deepEqual(diffs, [{ Branch: '', FromCommit: from, Name: 'foo', Namespace: 'admin', ToCommit: to }]);
      });
    }

    it('names what it cannot resolve', async () => {
      const far = await dm(['diff', 'HEAD~9']);
      assert.equal(far.code, 3);
      assert.equal(far.stderr, "error: Commits don't go back that far\n");
      const unknown = await dm(['diff', 'nope~1']);
      assert.equal(unknown.code, 3);
      assert.match(unknown.stderr, /^error: No commit "nope~1" in admin\/foo\n/);
      const merge = await dm(['diff', 'HEAD^2']);
      assert.match(merge.stderr, /commits have one parent/);
      const bad = await dm(['diff', 'HEAD~x']);
      assert.equal(bad.code, 2);
      assert.deepEqual(diffs, []);
    });
  });

  describe('dm dot delete of a dot in use', () => {
    it('answers at once when containers use it (the server says so in its error data)', async () => {
      let calls = 0;
      handlers.Delete = () => {
        calls++;
        throw new RpcFailure('Cannot delete admin/foo: containers are using it: /pg', {
          code: 'IN_USE',
          hint: 'stop the containers first',
          data: { containers: ['/pg'] },
        });
      };
      const run = await dm(['dot', 'delete', '-f', 'foo']);
      assert.equal(run.code, 5);
      assert.equal(run.stderr, 'error: Cannot delete admin/foo: containers are using it: /pg\nhint: stop the containers first\n');
      assert.equal(calls, 1);
      assert.deepEqual(run.sleeps, [], 'no retries');
    });

    it('still retries an IN_USE that is not about containers', async () => {
      let calls = 0;
      handlers.Delete = () => {
        calls++;
        throw new RpcFailure('admin/foo is busy', {
          code: 'IN_USE',
          hint: null,
          data: { processes: [{ pid: 1, command: 'sh' }] },
        });
      };
      const run = await dm(['dot', 'delete', '-f', 'foo']);
      assert.equal(run.code, 5);
      assert.equal(calls, 5);
      assert.deepEqual(run.sleeps, [1000, 2000, 3000, 4000]);
    });
  });

  describe('remotes: how they are reached, and adding one', () => {
    it('dm remote -v shows scheme, host and port', async () => {
      const run = await dm(['remote', '-v']);
      assert.equal(run.stdout, `* local\thttp://admin@127.0.0.1:${recorder.port}\n`);
      const json = JSON.parse((await dm(['--json', 'remote'])).stdout);
      assert.equal(json.remotes[0].scheme, 'http');
      assert.equal(json.remotes[0].trust, null);
    });

    it('a host that is down: advice for that host, and --no-check saves it anyway', async () => {
      const port = await closedPort();
      const here = await dm(['remote', 'add', 'here', `admin@127.0.0.1:${port}`], { DOTMESH_PASSWORD: 'k' });
      assert.equal(here.code, 10);
      assert.match(
        here.stderr,
        /\nhint: no dotmesh-server answers at 127\.0\.0\.1:\d+: start one on this host with `dm cluster init`/,
      );
      // 0.0.0.0 is not a loopback name, yet connecting to it stays on this machine.
      const far = await dm(['remote', 'add', 'far', `admin@0.0.0.0:${port}`], { DOTMESH_PASSWORD: 'k' });
      assert.equal(far.code, 10);
      assert.doesNotMatch(far.stderr, /cluster init`? \(or|start one on this host/);
      assert.match(
        far.stderr,
        /\nhint: check that dotmesh-server runs on 0\.0\.0\.0 and listens at 0\.0\.0\.0:\d+ .*add --no-check/,
      );
      assert.equal((await loadConfig(configPath())).Remotes.far, undefined, 'not saved');
      const saved = await dm(['remote', 'add', '--no-check', 'far', `admin@0.0.0.0:${port}`], { DOTMESH_PASSWORD: 'k' });
      assert.equal(saved.code, 0, saved.stderr);
      assert.equal(saved.stdout, 'Remote added without checking it (--no-check).\n');
      assert.equal((await loadConfig(configPath())).Remotes.far?.Port, port);
    });

    it('plain HTTP to another host warns that the API key travels in clear, with the HTTPS form', async () => {
      const run = await dm(['remote', 'add', '--no-check', 'backup', 'admin@10.0.0.2:32607'], { DOTMESH_PASSWORD: 'k' });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(
        run.stderr,
        "warning: the API key of remote 'backup' travels in clear text over plain HTTP to 10.0.0.2; use HTTPS instead: dm remote add backup https://admin@10.0.0.2:32606\n",
      );
      assert.deepEqual(methods(), [], '--no-check sends nothing');
      const local = await dm(['remote', 'add', '--no-check', 'lo', 'admin@localhost:32607'], { DOTMESH_PASSWORD: 'k' });
      assert.equal(local.stderr, '', 'no warning for this host');
    });

    it('--no-check with HTTPS pins the fingerprint given, and refuses without one', async () => {
      const refused = await dm(['remote', 'add', '--no-check', '--https', 'tls', 'admin@10.0.0.2:32606']);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /--no-check with HTTPS needs --trust-fingerprint/);
      const fp = 'ab'.repeat(32);
      const run = await dm(['remote', 'add', '--no-check', '--trust-fingerprint', fp, 'tls', 'admin@10.0.0.2:32606'], {
        DOTMESH_PASSWORD: 'k',
      });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, '', 'no clear-text warning for HTTPS');
      assert.match(await readFile(join(home, '.dotmesh', 'known_servers'), 'utf8'), /^10\.0\.0\.2:32606 AB:AB:/m);
      assert.match((await dm(['remote', '-v'])).stdout, /\n {2}tls\thttps:\/\/admin@10\.0\.0\.2:32606\n/);
    });
  });
});
