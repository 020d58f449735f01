import assert from 'node:assert/strict';
import { readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { makeTempDir } from '@dotmesh/testkit';
import { confirmPrompt } from './commands/dot-delete.ts';
import { NO_CURRENT_DOT } from './context.ts';
import { type Handler, type Recorder, RpcFailure, startRecorder } from './testing/recorder.ts';
import { runDm } from './testing/run-dm.ts';

/** Argument rules, error texts, exit codes and the current-dot rules of `dm`. */
describe('dm arguments and errors', () => {
  let recorder: Recorder;
  let home: string;
  const handlers: Record<string, Handler> = {};
  const dm = (args: string[], input: string[] = []) => runDm(args, { HOME: home }, input);
  const volume = (ns: string, name: string) => ({
    Id: `${name}-id`,
    Name: { Namespace: ns, Name: name },
    Branch: '',
    Master: 'n1',
  });

  before(async () => {
    recorder = await startRecorder(new Proxy(handlers, { get: (t, k: string) => t[k] }) as Record<string, Handler>, {
      unauthorized: (auth) => auth.endsWith(':revoked'),
    });
  });
  after(() => recorder.close());
  beforeEach(async () => {
    home = await makeTempDir('cli');
    for (const k of Object.keys(handlers)) delete handlers[k];
    handlers.Ping = () => true;
    const added = await runDm(['remote', 'add', 'local', `admin@127.0.0.1:${recorder.port}`], {
      HOME: home,
      DOTMESH_PASSWORD: 'k',
    });
    assert.equal(added.code, 0, added.stderr);
    recorder.take();
  });

  const usageCases: [string[], string][] = [
    [['init'], 'error: No dot name specified.\n'],
    [['init', 'a', 'b'], 'error: Too many arguments specified (more than 1).\n'],
    [['switch'], 'error: No dot name specified.\n'],
    [['commit'], 'error: Please provide a commit message\n'],
    [['commit', '-m', 'x', '-d', 'novalue'], 'error: Each metadata value must be a name=value pair: novalue\n'],
    [['checkout'], 'error: Please give me a branch name.\n'],
    [['reset', 'a', 'b'], 'error: Please specify one ref only.\n'],
    [
      ['dot', 'delete'],
      'error: Please specify the dot to delete (the default dot is ignored for deletion, to avoid mistakes).\n',
    ],
    [['mount', 'foo'], 'error: Please specify <dot> <mountpoint> as arguments.\n'],
    [['list', 'x'], 'error: Please specify no arguments.\n'],
    [['remote', 'add', 'x'], 'error: Please specify <remote-name> <user@cluster-hostname>\n'],
    [['remote', 'add', 'x', 'nohost'], 'error: Please specify user@cluster-hostname, got nohost\n'],
    [
      ['remote', 'add', 'x', 'u@h:port'],
      'error: Please specify a port as an integer, e.g user@cluster-hostname:port, got port\n',
    ],
    [['remote', 'add', 'local', 'u@h:1'], "error: Remote exists 'local'\n"],
    [['remote', 'rm', 'nope'], "error: No such remote 'nope'\n"],
    [['remote', 'switch', 'nope'], "error: No such remote 'nope'\n"],
    [['init', 'a/b/c'], "error: Volume names must be of the form NAMESPACE/VOLUME or just VOLUME: 'a/b/c'\n"],
  ];
  for (const [args, stderr] of usageCases) {
    it(`dm ${args.join(' ')} → ${stderr.trim()}`, async () => {
      const run = await dm(args);
      assert.equal(run.stderr, stderr);
      assert.ok(run.code === 2 || run.code === 9, `exit ${run.code}`);
      assert.deepEqual(recorder.take(), [], 'no request sent');
    });
  }

  it('refuses dot names of 50 characters or more before any request', async () => {
    const run = await dm(['init', 'x'.repeat(50)]);
    assert.equal(run.stderr, `Error: ${'x'.repeat(50)} is an invalid name: dot names must be <50 characters\n`);
    assert.equal(run.code, 2);
  });

  it('keeps the original "Error: ... exists already" text and exits 4', async () => {
    handlers.List = () => ({ admin: { foo: volume('admin', 'foo') } });
    const run = await dm(['init', 'foo']);
    assert.equal(run.stderr, 'Error: foo exists already\n');
    assert.equal(run.code, 4);
  });

  it('auto-selects the only dot and remembers it', async () => {
    handlers.List = () => ({ admin: { only: volume('admin', 'only') } });
    handlers.Commit = () => 'c1';
    const run = await dm(['commit', '-m', 'hi']);
    assert.equal(run.stdout, 'c1\n');
    assert.deepEqual(
      recorder.take().map((r) => r.method),
      ['List', 'Commit'],
    );
    const config = JSON.parse(await readFile(join(home, '.dotmesh', 'config'), 'utf8'));
    assert.equal(config.Remotes.local.CurrentVolume, 'only');
  });

  it('refuses to guess between several dots', async () => {
    handlers.List = () => ({ admin: { a: volume('admin', 'a') }, bob: { b: volume('bob', 'b') } });
    const run = await dm(['log']);
    assert.equal(run.stderr, `error: ${NO_CURRENT_DOT}\n`);
    assert.equal(run.code, 2);
  });

  it('reports server errors verbatim with the exit code of their data.code', async () => {
    handlers.List = () => ({});
    handlers.Create = () => {
      throw new RpcFailure('User is not an administrator for namespace bob, so cannot create volumes', {
        code: 'PERMISSION_DENIED',
        hint: 'h',
      });
    };
    const run = await dm(['init', 'bob/x']);
    assert.equal(run.stderr, 'error: User is not an administrator for namespace bob, so cannot create volumes\nhint: h\n');
    assert.equal(run.code, 6);
    const json = await dm(['--json', 'init', 'bob/y']);
    assert.deepEqual(JSON.parse(json.stderr), {
      error: {
        code: 'PERMISSION_DENIED',
        message: 'User is not an administrator for namespace bob, so cannot create volumes',
        hint: 'h',
        data: null,
      },
    });
  });

  it('dot delete asks for exactly Y', async () => {
    handlers.Delete = () => true;
    for (const answer of ['y', 'yes', '']) {
      const run = await dm(['dot', 'delete', 'foo'], [answer]);
      assert.equal(run.stdout, 'Aborted.\n');
      assert.deepEqual(run.prompts, [confirmPrompt('foo')]);
    }
    assert.deepEqual(recorder.take(), []);
    const run = await dm(['dot', 'delete', 'foo'], ['Y']);
    assert.equal(run.code, 0);
    assert.deepEqual(
      recorder.take().map((r) => r.body.replace(/"id":\d+/, '')),
      ['{"jsonrpc":"2.0","method":"DotmeshRPC.Delete","params":{"Namespace":"admin","Name":"foo"},}'],
    );
  });

  it('dot delete retries transient failures up to 5 times', async () => {
    let calls = 0;
    handlers.Delete = () => {
      calls++;
      throw new RpcFailure('etcd is settling');
    };
    const run = await dm(['dot', 'delete', '-f', 'foo']);
    assert.equal(calls, 5);
    assert.deepEqual(run.sleeps, [1000, 2000, 3000, 4000]);
    assert.equal(run.stderr, 'error: etcd is settling\n');
    calls = 0;
    handlers.Delete = () => {
      calls++;
      throw new RpcFailure("No such filesystem named 'admin/foo'", { code: 'DOT_NOT_FOUND' });
    };
    const gone = await dm(['dot', 'delete', '-f', 'foo']);
    assert.equal(calls, 1, 'a missing dot is not retried');
    assert.equal(gone.code, 3);
  });

  it('dot smash-branch-master: Lookup, then ForceBranchMasterById with the server id ("" = the serving node)', async () => {
    handlers.List = () => ({ admin: { foo: volume('admin', 'foo') } });
    handlers.Lookup = () => 'fs-b1';
    handlers.ForceBranchMasterById = () => true;
    handlers.Get = () => ({ ...volume('admin', 'foo'), Id: 'fs-b1', Branch: 'b1', Master: 'n2' });
    const run = await dm(['dot', 'smash-branch-master', 'foo', 'b1', 'n2']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'Node n2 is now the master of branch b1 of foo (fs-b1).\n');
    assert.deepEqual(
      recorder.take().map((r) => r.body.replace(/"id":\d+/, '')),
      [
        '{"jsonrpc":"2.0","method":"DotmeshRPC.Lookup","params":{"Namespace":"admin","Name":"foo","Branch":"b1"},}',
        '{"jsonrpc":"2.0","method":"DotmeshRPC.ForceBranchMasterById","params":{"FilesystemId":"fs-b1","Master":"n2"},}',
        '{"jsonrpc":"2.0","method":"DotmeshRPC.Get","params":"fs-b1",}',
      ],
    );
    // One argument: the branch of the current dot (the only one here); master is "" on the wire.
    const current = await dm(['dot', 'smash-branch-master', 'master']);
    assert.equal(current.code, 0, current.stderr);
    const sent = recorder.take().map((r) => r.body.replace(/"id":\d+/, ''));
    assert.ok(
      sent.includes('{"jsonrpc":"2.0","method":"DotmeshRPC.Lookup","params":{"Namespace":"admin","Name":"foo","Branch":""},}'),
    );
    assert.ok(
      sent.includes(
        '{"jsonrpc":"2.0","method":"DotmeshRPC.ForceBranchMasterById","params":{"FilesystemId":"fs-b1","Master":""},}',
      ),
    );
    const bad = await dm(['dot', 'smash-branch-master']);
    assert.equal(bad.stderr, 'error: Please specify [<dot>] <branch> [<server ID>] as arguments.\n');
    assert.equal(bad.code, 2);
  });

  it('maps HTTP 401 to the original permission text', async () => {
    const run = await runDm(['remote', 'add', 'x', `admin@127.0.0.1:${recorder.port}`], {
      HOME: home,
      DOTMESH_PASSWORD: 'revoked',
    });
    assert.equal(run.stderr, 'error: Permission denied. Please check that your API key is still valid.\n');
    assert.equal(run.code, 6);
    const none = await runDm(['list'], { HOME: join(home, 'nowhere') });
    assert.match(none.stderr, /^error: No remote is selected\.\nhint: run `dm cluster init`/);
  });

  it('prompts for the API key when DOTMESH_PASSWORD is unset', async () => {
    const run = await runDm(['remote', 'add', 'two', `carol@127.0.0.1:${recorder.port}`], { HOME: home }, ['carolkey']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.prompts, ['API key: ']);
    assert.equal(recorder.take()[0]?.auth, 'carol:carolkey');
  });

  it('checkout refuses unknown and existing branches with the original texts', async () => {
    handlers.List = () => ({ admin: { foo: volume('admin', 'foo') } });
    handlers.Branches = () => ['b1'];
    assert.equal(
      (await dm(['checkout', 'nope'])).stderr,
      'error: Branch does not exist: nope\nhint: list branches with `dm branch`, or create it with `dm checkout -b`\n',
    );
    assert.equal((await dm(['checkout', '-b', 'b1'])).stderr, 'error: Branch already exists: b1\n');
    assert.equal((await dm(['checkout', '-b', 'master'])).stderr, 'error: Branch already exists: master\n');
  });

  it('reset explains refs that go too far back', async () => {
    handlers.List = () => ({ admin: { foo: volume('admin', 'foo') } });
    handlers.Commits = () => [{ Id: 'c1', Metadata: {} }];
    const run = await dm(['reset', 'HEAD^']);
    assert.equal(run.stderr, "error: Commits don't go back that far\n");
    assert.equal(run.code, 3);
    assert.equal((await dm(['reset', 'zzz'])).stderr, 'error: No commits match\n');
  });

  it('debug sends JSON params, or a bare string, and prints the result', async () => {
    handlers.Get = (p) => ({ got: p });
    const run = await dm(['debug', 'Get', 'abc']);
    assert.equal(run.stdout, '{"got":"abc"}\n');
    const obj = await dm(['debug', 'DotmeshRPC.Get', '{"a":1}']);
    assert.equal(obj.stdout, '{"got":{"a":1}}\n');
  });

  it('mount procures the default subdot and symlinks the mountpoint to it', async () => {
    handlers.List = () => ({ admin: { foo: volume('admin', 'foo') } });
    handlers.Procure = (p) => `${home}/mnt/${(p as { Name: string }).Name}`;
    const mountpoint = join(home, 'data');
    const run = await dm(['mount', 'foo', mountpoint]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(await readlink(mountpoint), `${home}/mnt/foo`);
    assert.equal(
      run.stdout,
      `procured dot: admin/foo into ${home}/mnt/foo\nsymlinked dot: admin/foo from ${home}/mnt/foo to ${mountpoint}\n`,
    );
    assert.deepEqual(
      recorder.take().map((r) => [r.method, r.params]),
      [
        ['List', null],
        ['Procure', { Namespace: 'admin', Name: 'foo', Subdot: '__default__' }],
      ],
    );
    const missing = await dm(['mount', 'nope', join(home, 'x')]);
    assert.equal(missing.stderr, "error: Dot nope does not exist.\n\nIf you want to create it - use the '--create' flag\n");
    assert.equal(missing.code, 3);
  });

  it('--json prints one stable object per command, with --verbose lines on stderr', async () => {
    handlers.List = () => ({ admin: { foo: volume('admin', 'foo') } });
    handlers.Branches = () => ['b1'];
    const run = await dm(['--json', '--verbose', 'branch']);
    assert.deepEqual(JSON.parse(run.stdout), { dot: 'foo', currentBranch: 'master', branches: ['b1', 'master'] });
    assert.match(run.stderr, /^send rpc request\n/);
  });

  it('prints help with the exit codes, exit 0', async () => {
    const run = await dm(['--help']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /Exit codes/);
    assert.match(run.stdout, / 3 {3}DOT_NOT_FOUND/);
    const unknown = await dm(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  });

  afterEach(() => rm(home, { recursive: true, force: true }));
});
