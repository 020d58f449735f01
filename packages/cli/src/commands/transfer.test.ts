import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { TransferPollResult } from '@dotmesh/rpc';
import { makeTempDir } from '@dotmesh/testkit';
import { type DmConfig, loadConfig, saveConfig } from '../config.ts';
import { NO_CURRENT_DOT } from '../context.ts';
import { type Handler, type Recorder, RpcFailure, startRecorder } from '../testing/recorder.ts';
import { runDm } from '../testing/run-dm.ts';
import { NO_REMOTE_GIVEN } from './transfer-args.ts';
import { countersText, etaSeconds, formatBytes, formatDuration, rateText, startLine, statusLine } from './transfer-progress.ts';
import { MAX_POLL_FAILURES, POLL_INTERVAL_MS } from './transfer-run.ts';

const MIB = 1024 * 1024;

function poll(over: Partial<TransferPollResult>): TransferPollResult {
  return {
    TransferRequestId: 't1',
    Peer: '127.0.0.1',
    User: 'bob',
    ApiKey: 'must-not-be-shown',
    Direction: 'push',
    LocalNamespace: 'admin',
    LocalName: 'foo',
    LocalBranchName: '',
    RemoteNamespace: 'bob',
    RemoteName: 'foo',
    RemoteBranchName: '',
    FilesystemId: 'fs1',
    InitiatorNodeId: 'n1',
    PeerNodeId: 'n2',
    StartingCommit: '',
    TargetCommit: '',
    Index: 1,
    Total: 1,
    Status: 'finished',
    NanosecondsElapsed: 1_000_000,
    Size: 0,
    Sent: 0,
    Message: '',
    ...over,
  };
}

describe('transfer progress formatting', () => {
  it('formats bytes as the original bar did', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1536), '1.50 KiB');
    assert.equal(formatBytes(12 * MIB), '12.00 MiB');
    assert.equal(formatBytes(3 * 1024 * MIB), '3.00 GiB');
    assert.equal(formatBytes(2 * 1024 * 1024 * MIB), '2.00 TiB');
  });

  it('formats durations', () => {
    assert.equal(formatDuration(0.2), '1s');
    assert.equal(formatDuration(59), '59s');
    assert.equal(formatDuration(125), '2m05s');
    assert.equal(formatDuration(3725), '1h02m');
  });

  it('prints the original lines for a finished transfer of unknown size', () => {
    assert.equal(startLine(0), ' 0 B / ? ');
    assert.equal(statusLine(poll({})), 'finished 0 B / ?  0.00 MiB/s (1/1)');
    assert.equal(statusLine(poll({ Status: 'starting', NanosecondsElapsed: 0, Index: 0 })), 'starting 0 B / ?  ? MiB/s (0/1)');
  });

  it('shows bytes, percentage, ETA and rate once the size is known', () => {
    const p = poll({ Status: 'pushing', Size: 100 * MIB, Sent: 10 * MIB, NanosecondsElapsed: 2e9, Index: 1, Total: 3 });
    assert.equal(countersText(p), '10.00 MiB / 100.00 MiB');
    assert.equal(rateText(p), '5.00 MiB/s');
    assert.equal(etaSeconds(p), 18);
    assert.equal(statusLine(p), 'pushing 10.00 MiB / 100.00 MiB 10% ETA 18s 5.00 MiB/s (1/3)');
    assert.equal(startLine(100 * MIB), ' 0 B / 100.00 MiB 0%');
  });

  it('caps the bytes sent at the (estimated) size and drops the ETA when done', () => {
    const p = poll({ Size: 100 * MIB, Sent: 100 * MIB + 5000, NanosecondsElapsed: 5e9 });
    assert.equal(statusLine(p), 'finished 100.00 MiB / 100.00 MiB 100% 20.00 MiB/s (1/1)');
    assert.equal(etaSeconds(p), undefined);
  });
});

describe('dm push / pull / clone / dot set-upstream', () => {
  let recorder: Recorder;
  let home: string;
  const handlers: Record<string, Handler> = {};
  /** GetTransfer answers in order (the last repeats); an Error is thrown instead. */
  let script: (TransferPollResult | Error)[] = [];
  let transfers = 0;

  const configPath = () => join(home, '.dotmesh', 'config');
  const dm = (args: string[], terminal?: Parameters<typeof runDm>[4]) => runDm(args, { HOME: home }, [], 1000, terminal);
  const editConfig = async (edit: (c: DmConfig) => void) => {
    const c = await loadConfig(configPath());
    edit(c);
    await saveConfig(configPath(), c);
  };
  const transferParams = () =>
    recorder
      .take()
      .filter((r) => r.method === 'Transfer')
      .map((r) => JSON.parse(r.body).params);
  const transferBodies = () =>
    recorder
      .take()
      .filter((r) => r.method === 'Transfer')
      .map((r) => r.body);

  before(async () => {
    recorder = await startRecorder(new Proxy(handlers, { get: (t, k: string) => t[k] }) as Record<string, Handler>);
  });
  after(() => recorder.close());
  afterEach(() => rm(home, { recursive: true, force: true }));
  beforeEach(async () => {
    home = await makeTempDir('transfer');
    for (const k of Object.keys(handlers)) delete handlers[k];
    script = [poll({})];
    transfers = 0;
    handlers.Ping = () => true;
    handlers.List = () => ({ admin: { foo: {} } });
    handlers.Transfer = () => `t${++transfers}`;
    handlers.GetTransfer = (id) => {
      const next = script.length > 1 ? script.shift() : script[0];
      if (next instanceof Error) throw next;
      return { ...next, TransferRequestId: id };
    };
    for (const [name, user, key] of [
      ['local', 'admin', 'sekrit'],
      ['origin', 'bob', 'otherkey'],
    ] as const) {
      const added = await runDm(['remote', 'add', name, `${user}@127.0.0.1:${recorder.port}`], {
        HOME: home,
        DOTMESH_PASSWORD: key,
      });
      assert.equal(added.code, 0, added.stderr);
    }
    await editConfig((c) => {
      c.Remotes.local!.CurrentVolume = 'foo';
    });
    recorder.take();
  });

  const usageCases: [string[], string, number][] = [
    [['push'], `error: ${NO_REMOTE_GIVEN}\n`, 2],
    [['pull'], `error: ${NO_REMOTE_GIVEN}\n`, 2],
    [['clone'], `error: ${NO_REMOTE_GIVEN}\n`, 2],
    [['push', 'origin', 'a', 'b', 'c'], 'error: Too many arguments specified (more than 3).\n', 2],
    [
      ['push', 'nope'],
      "error: Unable to find remote 'nope'\nhint: list remotes with 'dm remote -v', add one with 'dm remote add <name> <user@host[:port]>'\n",
      2,
    ],
    [['push', 'origin', 'a/b/c'], "error: Volume names must be of the form NAMESPACE/VOLUME or just VOLUME: 'a/b/c'\n", 2],
    [
      ['clone', 'origin', 'x', 'bad.branch'],
      'error: invalid branch name "bad.branch", should match pattern: ^[a-zA-Z0-9_-]{1,64}$\n',
      2,
    ],
    [['dot', 'set-upstream', 'origin'], 'error: Please specify [<dot>] <remote> <remote-dot> as arguments.\n', 2],
    [['dot', 'set-upstream', 'a', 'b', 'c', 'd'], 'error: Please specify [<dot>] <remote> <remote-dot> as arguments.\n', 2],
  ];
  for (const [args, stderr, code] of usageCases) {
    it(`dm ${args.join(' ')} → ${stderr.split('\n')[0]}`, async () => {
      const run = await dm(args);
      assert.equal(run.stderr.replace(/\nhint: use 1 to 64.*\n$/, '\n'), stderr);
      assert.equal(run.code, code);
      assert.deepEqual(recorder.take(), [], 'no request sent');
    });
  }

  it('needs a current remote (the initiator) before anything is remembered', async () => {
    await editConfig((c) => {
      c.CurrentRemote = '';
    });
    const run = await dm(['push', 'origin', 'foo']);
    assert.match(run.stderr, /^error: No remote is selected\.\n/);
    assert.equal(run.stdout, '');
    assert.equal((await loadConfig(configPath())).Remotes.origin!.DefaultRemoteVolumes, null);
  });

  it('refuses an S3 remote as peer', async () => {
    await editConfig((c) => {
      c.S3Remotes.bucket = { KeyID: 'k', SecretKey: 's', Endpoint: '', DefaultRemoteVolumes: null };
    });
    const run = await dm(['push', 'bucket']);
    assert.equal(run.stderr, "error: 'bucket' is an S3 remote: transfers with S3 remotes are not supported yet\n");
    assert.equal(run.code, 2);
  });

  it('push <remote>: current dot and branch to the same name in the peer user namespace; remembers it', async () => {
    await editConfig((c) => {
      c.Remotes.local!.CurrentBranches = { foo: 'b1' };
    });
    const run = await dm(['push', 'origin']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'Pushing admin/foo to origin:bob/foo\n 0 B / ? \nfinished 0 B / ?  0.00 MiB/s (1/1)\nDone!\n');
    assert.equal(run.stderr, '');
    assert.deepEqual(transferBodies(), [
      `{"jsonrpc":"2.0","method":"DotmeshRPC.Transfer","params":{"Peer":"127.0.0.1","User":"bob","Port":${recorder.port},"ApiKey":"otherkey","Direction":"push","LocalNamespace":"admin","LocalName":"foo","LocalBranchName":"b1","RemoteNamespace":"bob","RemoteName":"foo","RemoteBranchName":"b1","TargetCommit":"","StashDivergence":false},"id":5577006791947779410}`,
    ]);
    const c = await loadConfig(configPath());
    assert.deepEqual(c.Remotes.origin!.DefaultRemoteVolumes, { admin: { foo: { Namespace: 'bob', Name: 'foo' } } });
    assert.equal(c.Remotes.local!.DefaultRemoteVolumes, null, 'only the peer remote records upstreams');
    assert.equal(run.sleeps[0], POLL_INTERVAL_MS, 'waits a second before the first poll');
  });

  it('goes to the Transfer of the CURRENT remote with the peer credentials', async () => {
    await dm(['push', 'origin']);
    const seen = recorder.take();
    const transfer = seen.find((r) => r.method === 'Transfer');
    assert.equal(transfer?.auth, 'admin:sekrit');
    const get = seen.find((r) => r.method === 'GetTransfer');
    assert.equal(get?.auth, 'admin:sekrit');
    assert.equal(get?.body.includes('"params":"t1"'), true);
  });

  it('selects the only dot when none is current, and refuses when that is ambiguous', async () => {
    await editConfig((c) => {
      c.Remotes.local!.CurrentVolume = '';
    });
    handlers.List = () => ({ admin: { foo: {}, bar: {} } });
    const ambiguous = await dm(['push', 'origin']);
    assert.equal(ambiguous.stderr, `error: ${NO_CURRENT_DOT}\n`);
    assert.equal(ambiguous.code, 2);
    assert.deepEqual(transferParams(), []);
    handlers.List = () => ({ ns: { only: {} } });
    const run = await dm(['push', 'origin']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Pushing ns\/only to origin:bob\/only\n/);
    assert.equal((await loadConfig(configPath())).Remotes.local!.CurrentVolume, 'ns/only');
  });

  it('push <remote> <dot> [<branch>]: master by default; --remote-name wins but does not replace the upstream', async () => {
    assert.equal((await dm(['push', 'origin', 'ns1/bar'])).code, 0);
    const second = await dm(['push', 'origin', 'ns1/bar', 'b2', '--remote-name', 'other']);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /^Pushing ns1\/bar to origin:bob\/other\n/);
    const third = await dm(['push', 'origin', 'ns1/bar', '--remote-name=alice/x', '--stash-on-divergence']);
    assert.equal(third.code, 0, third.stderr);
    const sent = transferParams();
    assert.deepEqual(
      sent.map((p) => [
        p.LocalNamespace,
        p.LocalName,
        p.LocalBranchName,
        p.RemoteNamespace,
        p.RemoteName,
        p.RemoteBranchName,
        p.StashDivergence,
      ]),
      [
        ['ns1', 'bar', '', 'bob', 'bar', '', false],
        ['ns1', 'bar', 'b2', 'bob', 'other', 'b2', false],
        ['ns1', 'bar', '', 'alice', 'x', '', true],
      ],
    );
    const c = await loadConfig(configPath());
    assert.deepEqual(c.Remotes.origin!.DefaultRemoteVolumes, { ns1: { bar: { Namespace: 'bob', Name: 'bar' } } });
  });

  it('pull uses the remembered upstream, then --remote-name', async () => {
    await dm(['dot', 'set-upstream', 'foo', 'origin', 'carol/shared']);
    const run = await dm(['pull', 'origin', 'foo', 'b1']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Pulling admin\/foo from origin:carol\/shared\n/);
    await dm(['pull', 'origin', 'foo', '--remote-name', 'dave/y']);
    const sent = transferParams();
    assert.deepEqual(
      sent.map((p) => [p.Direction, p.LocalName, p.LocalBranchName, p.RemoteNamespace, p.RemoteName, p.RemoteBranchName]),
      [
        ['pull', 'foo', 'b1', 'carol', 'shared', 'b1'],
        ['pull', 'foo', '', 'dave', 'y', ''],
      ],
    );
  });

  it('clone: the dot argument is remote (peer user namespace); local name without namespace or --local-name', async () => {
    const a = await dm(['clone', 'origin', 'apples']);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /^Pulling admin\/apples from origin:bob\/apples\n/);
    const b = await dm(['clone', 'origin', 'alice/pears', 'dev', '--local-name', 'mine/p2']);
    assert.match(b.stdout, /^Pulling mine\/p2 from origin:alice\/pears\n/);
    const c = await dm(['clone', 'origin', 'alice/figs']);
    assert.match(c.stdout, /^Pulling admin\/figs from origin:alice\/figs\n/);
    const sent = transferParams();
    assert.deepEqual(
      sent.map((p) => [
        p.Direction,
        p.LocalNamespace,
        p.LocalName,
        p.LocalBranchName,
        p.RemoteNamespace,
        p.RemoteName,
        p.RemoteBranchName,
      ]),
      [
        ['pull', 'admin', 'apples', '', 'bob', 'apples', ''],
        ['pull', 'mine', 'p2', 'dev', 'alice', 'pears', 'dev'],
        ['pull', 'admin', 'figs', '', 'alice', 'figs', ''],
      ],
    );
    const config = await loadConfig(configPath());
    assert.equal(config.Remotes.local!.CurrentVolume, 'foo', 'the current dot does not change');
    assert.deepEqual(Object.keys(config.Remotes.origin!.DefaultRemoteVolumes ?? {}), ['admin', 'mine']);
  });

  it('names local dots in the current remote user namespace, as other commands', async () => {
    await editConfig((c) => {
      c.Remotes.local!.User = 'alice';
    });
    const run = await dm(['push', 'origin', 'apples']);
    assert.match(run.stdout, /^Pushing alice\/apples to origin:bob\/apples\n/);
  });

  it('sends a peer without port as Port 0, and the https trust of known_servers', async () => {
    await editConfig((c) => {
      c.Remotes.far = { ...c.Remotes.origin!, Hostname: 'far.example', Port: 0 };
      c.Remotes.pinned = { ...c.Remotes.origin!, Hostname: 'pinned.example', Port: 32606 };
      c.Remotes.public = { ...c.Remotes.origin!, Hostname: 'public.example', Port: 443 };
    });
    await writeFile(join(home, '.dotmesh', 'known_servers'), '# test\npinned.example:32606 AB:CD:EF\npublic.example:443 ca\n');
    for (const peer of ['far', 'pinned', 'public']) assert.equal((await dm(['push', peer])).code, 0);
    const [far, pinned, pub] = transferParams();
    assert.equal(far.Port, 0);
    assert.equal(far.Peer, 'far.example');
    assert.equal('PeerCertSha256' in far || 'PeerHttps' in far, false);
    assert.equal(pinned.PeerCertSha256, 'AB:CD:EF');
    assert.equal('PeerHttps' in pinned, false);
    assert.equal(Object.keys(pinned).at(-1), 'PeerCertSha256', 'after the original fields');
    assert.equal(pub.PeerHttps, true);
    assert.equal(pub.Port, 443);
    assert.equal('PeerCertSha256' in pub, false);
  });

  it('polls once a second through several states, printing each new state once', async () => {
    const pushing = { Status: 'pushing', Size: 100 * MIB, Total: 2 };
    script = [
      poll({ Status: 'starting', NanosecondsElapsed: 0, Total: 2 }),
      poll({ ...pushing, Sent: 10 * MIB, NanosecondsElapsed: 2e9 }),
      poll({ ...pushing, Sent: 10 * MIB, NanosecondsElapsed: 2e9 }),
      poll({ ...pushing, Sent: 60 * MIB, NanosecondsElapsed: 4e9 }),
      poll({ Status: 'finished', Size: 100 * MIB, Sent: 100 * MIB, NanosecondsElapsed: 5e9, Index: 1, Total: 2 }),
      poll({ Status: 'finished', Size: 1 * MIB, Sent: 1 * MIB, NanosecondsElapsed: 1e9, Index: 2, Total: 2 }),
    ];
    const run = await dm(['push', 'origin']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stdout,
      [
        'Pushing admin/foo to origin:bob/foo',
        ' 0 B / ? ',
        'starting 0 B / ?  ? MiB/s (1/2)',
        'pushing 10.00 MiB / 100.00 MiB 10% ETA 18s 5.00 MiB/s (1/2)',
        'pushing 60.00 MiB / 100.00 MiB 60% ETA 3s 15.00 MiB/s (1/2)',
        'finished 100.00 MiB / 100.00 MiB 100% 20.00 MiB/s (1/2)',
        'finished 1.00 MiB / 1.00 MiB 100% 1.00 MiB/s (2/2)',
        'Done!',
        '',
      ].join('\n'),
    );
    const gets = recorder.take().filter((r) => r.method === 'GetTransfer');
    assert.equal(gets.length, 6);
    assert.deepEqual(
      run.sleeps.filter((ms) => ms === POLL_INTERVAL_MS),
      Array(6).fill(POLL_INTERVAL_MS),
    );
  });

  it('a record without a structured error (the original server) fails with its message, exit 1', async () => {
    script = [
      poll({ Status: 'pushing', Size: 10 * MIB, Sent: MIB, NanosecondsElapsed: 1e9 }),
      poll({ Status: 'error', Message: 'Transfer failed with: toSnaps diverged from fromSnaps' }),
    ];
    const run = await dm(['push', 'origin']);
    assert.equal(run.code, 1);
    assert.equal(run.stderr, 'error: Transfer failed with: toSnaps diverged from fromSnaps\n');
    assert.match(run.stdout, /\nerror 0 B \/ \? {2}0\.00 MiB\/s \(1\/1\)\n$/);
    assert.doesNotMatch(run.stdout, /Done!/);
  });

  /** A transfer record as the server writes it when a push diverged. */
  const divergedPoll = (extra: { senderExtra: string[]; receiverExtra: string[] }) =>
    poll({
      Status: 'error',
      Message: 'they diverged (pass --stash-on-divergence)',
      Error: {
        code: 'DIVERGED',
        message: 'they diverged',
        hint: 'pass --stash-on-divergence',
        data: {
          common: 'c0',
          sender: 'admin/foo@master (this server)',
          receiver: 'bob/foo@master (peer 10.0.0.2:32607)',
          ...extra,
          senderExtraCount: extra.senderExtra.length,
          receiverExtraCount: extra.receiverExtra.length,
        },
      },
    });

  it('a diverged transfer exits with DIVERGED’s status and prints the common commit and both sides’ commits', async () => {
    script = [divergedPoll({ senderExtra: ['s1', 's2'], receiverExtra: ['r1'] })];
    const run = await dm(['push', 'origin']);
    assert.equal(run.code, 9);
    assert.equal(
      run.stderr,
      [
        'error: they diverged',
        'common commit: c0',
        'only on admin/foo@master (this server): s1, s2',
        'only on bob/foo@master (peer 10.0.0.2:32607): r1',
        'hint: pass --stash-on-divergence',
        '',
      ].join('\n'),
    );
  });

  it('--json: a diverged transfer is its error object with the code, hint and data', async () => {
    const record = divergedPoll({ senderExtra: ['s1'], receiverExtra: ['r1', 'r2'] });
    script = [record];
    const run = await dm(['push', 'origin', '--json']);
    assert.equal(run.code, 9);
    assert.equal(run.stdout, '');
    const last = run.stderr.trim().split('\n').at(-1)!;
    // The record's error as it is, with the transfer's id added to its data.
    assert.deepEqual(JSON.parse(last), { error: { ...record.Error, data: { ...record.Error?.data, transferId: 't1' } } });
    assert.deepEqual(JSON.parse(last).error.data.receiverExtra, ['r1', 'r2']);
  });

  it('a transfer error from a newer server with a code this dm does not know exits 1 and keeps the code', async () => {
    script = [
      poll({ Status: 'error', Message: 'over quota', Error: { code: 'QUOTA', message: 'over quota', hint: null, data: null } }),
    ];
    const run = await dm(['push', 'origin', '--json']);
    assert.equal(run.code, 1);
    assert.deepEqual(JSON.parse(run.stderr.trim().split('\n').at(-1)!), {
      error: { code: 'INTERNAL', message: 'over quota', hint: null, data: { unknownCode: 'QUOTA', transferId: 't1' } },
    });
  });

  it('records no upstream for a push, pull or clone that fails; one that finishes records it', async () => {
    script = [poll({ Status: 'error', Message: 'boom' })];
    assert.equal((await dm(['push', 'origin'])).code, 1);
    assert.equal((await dm(['clone', 'origin', 'carol/x'])).code, 1);
    handlers.Transfer = () => {
      throw new RpcFailure("Can't pull when remote doesn't exist", { code: 'DOT_NOT_FOUND' });
    };
    assert.equal((await dm(['pull', 'origin', 'foo'])).code, 3);
    assert.equal((await loadConfig(configPath())).Remotes.origin!.DefaultRemoteVolumes, null);
    handlers.Transfer = () => `t${++transfers}`;
    script = [poll({})];
    const ok = await dm(['clone', 'origin', 'carol/x']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual((await loadConfig(configPath())).Remotes.origin!.DefaultRemoteVolumes, {
      admin: { x: { Namespace: 'carol', Name: 'x' } },
    });
  });

  it('reports a Transfer refused by the server with its code', async () => {
    handlers.Transfer = () => {
      throw new RpcFailure("Can't pull when remote doesn't exist", { code: 'DOT_NOT_FOUND' });
    };
    const run = await dm(['pull', 'origin', 'foo']);
    assert.equal(run.stderr, "error: Can't pull when remote doesn't exist\n");
    assert.equal(run.code, 3);
    assert.equal(run.stdout, 'Pulling admin/foo from origin:bob/foo\n');
  });

  it('retries a failing poll, quietly while the transfer is not registered yet', async () => {
    script = [
      new RpcFailure('No such intercluster transfer t1', { code: 'DOT_NOT_FOUND', hint: null, data: { transferId: 't1' } }),
      new Error('etcd hiccup'),
      poll({}),
    ];
    const run = await dm(['push', 'origin']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stdout,
      'Pushing admin/foo to origin:bob/foo\nGot error, trying again: etcd hiccup\n 0 B / ? \nfinished 0 B / ?  0.00 MiB/s (1/1)\nDone!\n',
    );
  });

  it(`gives up after ${MAX_POLL_FAILURES} failed polls in a row`, async () => {
    script = [new Error('down')];
    const run = await dm(['push', 'origin']);
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      'error: cannot follow transfer t1: down\nhint: the transfer may go on on the server; see its state with `dm debug GetTransfer t1`\n',
    );
    assert.equal(recorder.take().filter((r) => r.method === 'GetTransfer').length, MAX_POLL_FAILURES);
  });

  it('--json: one JSON object with the transfer id and final state; progress lines on stderr', async () => {
    const run = await dm(['--json', 'push', 'origin', 'foo', 'b1']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), {
      direction: 'push',
      peer: 'origin',
      local: { namespace: 'admin', name: 'foo', branch: 'b1' },
      remote: { namespace: 'bob', name: 'foo', branch: 'b1' },
      transferId: 't1',
      result: (({ ApiKey: _k, ...rest }) => ({ ...rest, TransferRequestId: 't1' }))(poll({})),
    });
    assert.doesNotMatch(run.stdout, /must-not-be-shown/);
    assert.equal(run.stderr, ' 0 B / ? \nfinished 0 B / ?  0.00 MiB/s (1/1)\n');
  });

  it('--json: a failed transfer is an error object on stderr', async () => {
    script = [poll({ Status: 'error', Message: 'boom' })];
    const run = await dm(['push', 'origin', '--json']);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /\{"error":\{"code":"INTERNAL","message":"boom","hint":null,"data":\{"transferId":"t1"\}\}\}\n$/);
  });

  it('draws a progress bar on a terminal', async () => {
    let drawn = '';
    const terminal = {
      isTTY: true,
      columns: 100,
      write(text: string, cb?: (err?: Error | null) => void) {
        drawn += text;
        cb?.();
        return true;
      },
    };
    script = [
      poll({ Status: 'pushing', Size: 100 * MIB, Sent: 25 * MIB, NanosecondsElapsed: 5e9 }),
      poll({ Status: 'finished', Size: 100 * MIB, Sent: 100 * MIB, NanosecondsElapsed: 10e9 }),
    ];
    const run = await dm(['push', 'origin'], { terminal });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'Pushing admin/foo to origin:bob/foo\nDone!\n', 'no plain lines');
    assert.match(drawn, /pushing \[[=-]+\] 25\.00 MiB \/ 100\.00 MiB 25% 5\.00 MiB\/s ETA 15s \(1\/1\)/);
    assert.match(drawn, /finished \[=+\] 100\.00 MiB \/ 100\.00 MiB 100% 10\.00 MiB\/s \(1\/1\)/);
    assert.ok(drawn.endsWith('\n'), 'the bar ends its line');
    assert.doesNotMatch(drawn, /\x1b[78]/, 'no cursor save/restore (it would jump above later lines)');
  });

  it('dot set-upstream records the upstream on the remote; dot show prints it', async () => {
    const set = await dm(['dot', 'set-upstream', 'origin', 'shared']);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, '');
    assert.equal((await dm(['dot', 'set-upstream', 'ns2/bar', 'origin', 'carol/b'])).code, 0);
    assert.equal((await dm(['dot', 'set-upstream', 'ns2/bar', 'local', 'x'])).code, 0);
    const text = await readFile(configPath(), 'utf8');
    assert.match(
      text,
      /"origin":\{[^}]*"DefaultRemoteVolumes":\{"admin":\{"foo":\{"Namespace":"bob","Name":"shared"\}\},"ns2":\{"bar":\{"Namespace":"carol","Name":"b"\}\}\}/,
    );
    const json = await dm(['--json', 'dot', 'set-upstream', 'foo', 'origin', 'eve/z']);
    assert.deepEqual(JSON.parse(json.stdout), {
      remote: 'origin',
      local: { namespace: 'admin', name: 'foo' },
      upstream: { namespace: 'eve', name: 'z' },
    });

    handlers.Lookup = () => 'id-master';
    handlers.Get = () => ({ Id: 'id-master', Name: { Namespace: 'ns2', Name: 'bar' }, Branch: '', Master: 'n1', CommitCount: 1 });
    handlers.Branches = () => [];
    handlers.Containers = () => [];
    handlers.GetReplicationLatencyForBranch = () => ({});
    const show = await dm(['dot', 'show', 'ns2/bar']);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /\nTracks dot admin\/x on remote local\nTracks dot carol\/b on remote origin\n$/);
    const scripting = await dm(['dot', 'show', '-H', 'ns2/bar']);
    assert.match(scripting.stdout, /\ndefaultUpstreamDot\tlocal\tadmin\/x\ndefaultUpstreamDot\torigin\tcarol\/b\n$/);
  });

  it('dot set-upstream: errors name the remote', async () => {
    const run = await dm(['dot', 'set-upstream', 'nope', 'x']);
    assert.match(run.stderr, /^error: Unable to find remote 'nope'\n/);
    assert.equal(run.code, 2);
  });
});
