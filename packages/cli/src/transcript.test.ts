import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeTempDir } from '@dotmesh/testkit';
import { formatTimestampNs } from './format.ts';
import { type Recorder, startRecorder } from './testing/recorder.ts';
import { GO_RAND_IDS, runDm } from './testing/run-dm.ts';
import { TRANSFER_IDS, transcriptHandlers } from './testing/transcript-server.ts';

/**
 * Replays packages/server/test/fixtures/dm-0.8.1-transcript.md: each command must send exactly
 * the original client's request bodies (same key order, same ids, same auth) and print the same
 * text, except where dm tells more: `dm log` shows readable dates (the original printed the raw
 * nanoseconds), `dm remote -v` shows scheme and port.
 * Steps run in order and share one config file, as in the transcript.
 */
const R = (method: string, params: string, id: string) =>
  `{"jsonrpc":"2.0","method":"DotmeshRPC.${method}","params":${params},"id":${id}}`;
const [ID1, ID2, ID3, ID4, ID5, ID6, ID7, ID8, ID9, ID10] = GO_RAND_IDS as [
  string,
  string,
  string,
  string,
  string,
  string,
  string,
  string,
  string,
  string,
];
/** The Transfer params the original sends (its 13 fields, in its order). */
const TRANSFER = (direction: string, local: string, localBranch: string, remoteNs: string, remote: string) =>
  `{"Peer":"127.0.0.1","User":"bob","Port":PORT,"ApiKey":"otherkey","Direction":"${direction}","LocalNamespace":"admin","LocalName":"${local}","LocalBranchName":"${localBranch}","RemoteNamespace":"${remoteNs}","RemoteName":"${remote}","RemoteBranchName":"${localBranch}","TargetCommit":"","StashDivergence":false}`;
/**
 * What the original printed to a non-terminal: its progress bar's start and final state, which
 * it separated with carriage returns (the transcript shows them as lines); dm prints lines.
 */
const PROGRESS = ' 0 B / ? \nfinished 0 B / ?  0.00 MiB/s (1/1)\nDone!\n';
const HEADER = "Current remote: local (use 'dm remote -v' to list and 'dm remote switch' to switch)\n\n";
const FOO = '{"Namespace":"admin","Name":"foo"}';
const LOG_MASTER = `commit d6677939-de29-40de-8b33-cacfeb58367a
author: admin
date: ${formatTimestampNs('1795628812414000000')}

    x

commit 25270661-e992-45ec-900b-7b22f8ef43d3
author: admin
date: ${formatTimestampNs('1795628812471000000')}
k1: v1
k2: v2

    second

`;

interface Step {
  args: string[];
  env?: Record<string, string>;
  stdout?: string;
  requests: string[];
  auth?: string;
}

const STEPS: Step[] = [
  {
    args: ['remote', 'add', 'local', 'admin@127.0.0.1:PORT'],
    env: { DOTMESH_PASSWORD: 'sekrit' },
    stdout: 'Remote added.\nAutomatically switched to first remote.\n',
    requests: [R('Ping', '{}', ID1)],
  },
  {
    args: ['version'],
    stdout: `${HEADER}Client:\n\tVersion: 0.1.0\nServer:\n\tVersion: fake-0.0.0\n`,
    requests: [R('Version', '{}', ID1)],
  },
  {
    args: ['list'],
    stdout: `${HEADER}  DOT  BRANCH  SERVER  CONTAINERS  SIZE  COMMITS  DIRTY\n`,
    requests: [R('ListWithContainers', 'null', ID1)],
  },
  { args: ['init', 'foo'], stdout: '', requests: [R('List', 'null', ID1), R('Create', FOO, ID2)] },
  {
    args: ['list'],
    stdout: `${HEADER}  DOT  BRANCH  SERVER       CONTAINERS  SIZE  COMMITS  DIRTY\n* foo  master  fake-node-1              -     0        -\n`,
    requests: [R('ListWithContainers', 'null', ID1)],
  },
  {
    args: ['commit', '-m', 'x'],
    stdout: 'd6677939-de29-40de-8b33-cacfeb58367a\n',
    requests: [R('Commit', '{"Namespace":"admin","Name":"foo","Branch":"","Message":"x","Metadata":{}}', ID1)],
  },
  {
    args: ['commit', '-m', 'second', '-d', 'k2=v2', '-d', 'k1=v1'],
    stdout: '25270661-e992-45ec-900b-7b22f8ef43d3\n',
    requests: [
      R('Commit', '{"Namespace":"admin","Name":"foo","Branch":"","Message":"second","Metadata":{"k1":"v1","k2":"v2"}}', ID1),
    ],
  },
  { args: ['log'], stdout: LOG_MASTER, requests: [R('Commits', '{"Branch":"","Name":"foo","Namespace":"admin"}', ID1)] },
  { args: ['branch'], stdout: '* master\n', requests: [R('Branches', FOO, ID1)] },
  {
    args: ['checkout', '-b', 'b1'],
    stdout: '',
    requests: [
      R('Branches', FOO, ID1),
      R('Commits', '{"Branch":"","Name":"foo","Namespace":"admin"}', ID2),
      // Not sent by the original: the uncommitted bytes of the branch left (to warn about them).
      R('Lookup', '{"Namespace":"admin","Name":"foo","Branch":""}', ID3),
      R('Get', '"286e4f1b-eed1-4e55-a849-f4159fdb2638"', ID4),
      R(
        'Branch',
        '{"Namespace":"admin","Name":"foo","SourceBranch":"master","NewBranchName":"b1","SourceCommitId":"25270661-e992-45ec-900b-7b22f8ef43d3"}',
        ID5,
      ),
      R('SwitchContainers', '{"Name":"foo","Namespace":"admin","NewBranchName":"b1"}', ID6),
    ],
  },
  { args: ['branch'], stdout: '* b1\n  master\n', requests: [R('Branches', FOO, ID1)] },
  {
    args: ['commit', '-m', 'on b1'],
    stdout: '7f6848a8-91dc-443a-a2a3-4437ac7f7a4a\n',
    requests: [R('Commit', '{"Namespace":"admin","Name":"foo","Branch":"b1","Message":"on b1","Metadata":{}}', ID1)],
  },
  {
    args: ['log'],
    stdout: `${LOG_MASTER}commit 7f6848a8-91dc-443a-a2a3-4437ac7f7a4a\nauthor: admin\ndate: ${formatTimestampNs('1795628812760000000')}\n\n    on b1\n\n`,
    requests: [R('Commits', '{"Branch":"b1","Name":"foo","Namespace":"admin"}', ID1)],
  },
  {
    args: ['checkout', 'master'],
    stdout: '',
    requests: [R('Branches', FOO, ID1), R('SwitchContainers', '{"Name":"foo","Namespace":"admin","NewBranchName":""}', ID2)],
  },
  {
    args: ['reset', '--hard', 'HEAD^'],
    stdout: '',
    requests: [
      R('Commits', '{"Branch":"","Name":"foo","Namespace":"admin"}', ID1),
      R('Rollback', '{"Branch":"","Name":"foo","Namespace":"admin","SnapshotId":"d6677939-de29-40de-8b33-cacfeb58367a"}', ID2),
    ],
  },
  {
    args: ['init', 'ns2/bar'],
    stdout: '',
    requests: [R('List', 'null', ID1), R('Create', '{"Namespace":"ns2","Name":"bar"}', ID2)],
  },
  { args: ['switch', 'ns2/bar'], stdout: '', requests: [R('List', 'null', ID1)] },
  {
    args: ['list', '-H'],
    stdout: 'foo\tmaster\tfake-node-1\t\t0\t1\t0\nns2/bar\tmaster\tfake-node-1\t\t0\t0\t0\n',
    requests: [R('ListWithContainers', 'null', ID1)],
  },
  {
    args: ['dot', 'show', 'foo'],
    stdout: `Dot admin/foo:
Master branch ID: 286e4f1b-eed1-4e55-a849-f4159fdb2638
Commits: 1
Dot size: - (all clean)
Branches:
  b1 (08ebd658-9a57-4e7a-a931-9edd0b315637)
   Replication Status:
* master (286e4f1b-eed1-4e55-a849-f4159fdb2638)
   Replication Status:
`,
    requests: [
      R('Lookup', '{"Namespace":"admin","Name":"foo","Branch":""}', ID1),
      R('Get', '"286e4f1b-eed1-4e55-a849-f4159fdb2638"', ID2),
      R('Branches', FOO, ID3),
      R('Lookup', '{"Namespace":"admin","Name":"foo","Branch":"b1"}', ID4),
      R('Get', '"08ebd658-9a57-4e7a-a931-9edd0b315637"', ID5),
      // Not sent by the original: each branch's durability (GetDurability) and this server's
      // per-commit space (CommitSizes); the recorder refuses them, so nothing more is asked and
      // the output is the original's. (The test harness's ids wrap after its ten.)
      R('GetDurability', '{"Namespace":"admin","Name":"foo","Branch":"b1"}', ID6),
      R('GetReplicationLatencyForBranch', '{"Namespace":"admin","Name":"foo","Branch":"b1"}', ID7),
      R('Containers', '{"Branch":"","Name":"foo","Namespace":"admin"}', ID8),
      R('GetDurability', '{"Namespace":"admin","Name":"foo","Branch":""}', ID9),
      R('GetReplicationLatencyForBranch', '{"Namespace":"admin","Name":"foo","Branch":""}', ID10),
      R('CommitSizes', '{"Namespace":"admin","Name":"foo","Branch":"b1"}', ID1),
    ],
  },
  { args: ['dot', 'delete', '-f', 'ns2/bar'], stdout: '', requests: [R('Delete', '{"Namespace":"ns2","Name":"bar"}', ID1)] },
  {
    args: ['remote', 'add', 'origin', 'bob@127.0.0.1:PORT'],
    env: { DOTMESH_PASSWORD: 'otherkey' },
    stdout: 'Remote added.\n',
    requests: [R('Ping', '{}', ID1)],
    auth: 'bob:otherkey',
  },
  // Differs from the original (`* local\tadmin@127.0.0.1`): scheme and port are shown.
  { args: ['remote', '-v'], stdout: '* local\thttp://admin@127.0.0.1:PORT\n  origin\thttp://bob@127.0.0.1:PORT\n', requests: [] },
  { args: ['switch', 'foo'], stdout: '', requests: [R('List', 'null', ID1)] },
  {
    args: ['push', 'origin'],
    stdout: `Pushing admin/foo to origin:bob/foo\n${PROGRESS}`,
    requests: [R('Transfer', TRANSFER('push', 'foo', '', 'bob', 'foo'), ID1), R('GetTransfer', `"${TRANSFER_IDS[0]}"`, ID2)],
  },
  {
    args: ['push', 'origin', 'foo', 'b1', '--remote-name', 'bob/foo2'],
    stdout: `Pushing admin/foo to origin:bob/foo2\n${PROGRESS}`,
    requests: [R('Transfer', TRANSFER('push', 'foo', 'b1', 'bob', 'foo2'), ID1), R('GetTransfer', `"${TRANSFER_IDS[1]}"`, ID2)],
  },
  {
    args: ['pull', 'origin', 'foo'],
    stdout: `Pulling admin/foo from origin:bob/foo\n${PROGRESS}`,
    requests: [R('Transfer', TRANSFER('pull', 'foo', '', 'bob', 'foo'), ID1), R('GetTransfer', `"${TRANSFER_IDS[2]}"`, ID2)],
  },
  {
    args: ['clone', 'origin', 'alice/apples', '--local-name', 'apples'],
    stdout: `Pulling admin/apples from origin:alice/apples\n${PROGRESS}`,
    requests: [
      R('Transfer', TRANSFER('pull', 'apples', '', 'alice', 'apples'), ID1),
      R('GetTransfer', `"${TRANSFER_IDS[3]}"`, ID2),
    ],
  },
  {
    args: ['--verbose', 'list'],
    stdout: `${HEADER}send rpc request
${R('ListWithContainers', 'null', ID1)}
got rpc response
{"jsonrpc":"2.0","result":{"admin":{"foo":{"Volume":{"Id":"286e4f1b-eed1-4e55-a849-f4159fdb2638","Name":{"Namespace":"admin","Name":"foo"},"Branch":"","Master":"fake-node-1","SizeBytes":0,"DirtyBytes":0,"CommitCount":1,"ServerStates":{},"ServerStatuses":{},"ForkParentId":"","ForkParentSnapshotId":""},"Containers":[]}},"ns2":{}},"id":${ID1}}
  DOT  BRANCH  SERVER       CONTAINERS  SIZE  COMMITS  DIRTY
* foo  master  fake-node-1              -     1        -
`,
    requests: [R('ListWithContainers', 'null', ID1)],
  },
];

describe('dm against the transcript recorder', () => {
  let recorder: Recorder;
  let home: string;
  before(async () => {
    recorder = await startRecorder(transcriptHandlers());
    home = await makeTempDir('transcript');
  });
  after(async () => {
    await recorder.close();
    await rm(home, { recursive: true, force: true });
  });

  const configFile = () => join(home, '.dotmesh', 'config');

  for (const [i, step] of STEPS.entries()) {
    it(`${i + 1}. dm ${step.args.join(' ')}`, async () => {
      const args = step.args.map((a) => a.replace('PORT', String(recorder.port)));
      const run = await runDm(args, { HOME: home, ...step.env });
      assert.equal(run.stderr, '', 'no error output');
      assert.equal(run.code, 0);
      if (step.stdout !== undefined) assert.equal(run.stdout, step.stdout.replaceAll(':PORT', `:${recorder.port}`));
      const seen = recorder.take();
      assert.deepEqual(
        seen.map((r) => r.body),
        step.requests.map((body) => body.replace('"Port":PORT', `"Port":${recorder.port}`)),
      );
      for (const r of seen) assert.equal(r.auth, step.auth ?? 'admin:sekrit');
      if (i === 0) {
        assert.equal(
          await readFile(configFile(), 'utf8'),
          `{"CurrentRemote":"local","Remotes":{"local":{"User":"admin","Hostname":"127.0.0.1","Port":${recorder.port},"ApiKey":"sekrit","CurrentVolume":"","CurrentBranches":null,"DefaultRemoteVolumes":null}},"S3Remotes":{}}`,
        );
      }
    });
  }

  it('leaves the config as the original did (upstreams remembered on the peer, keys sorted)', async () => {
    const p = recorder.port;
    assert.equal(
      await readFile(configFile(), 'utf8'),
      `{"CurrentRemote":"local","Remotes":{"local":{"User":"admin","Hostname":"127.0.0.1","Port":${p},"ApiKey":"sekrit","CurrentVolume":"foo","CurrentBranches":{"foo":"master"},"DefaultRemoteVolumes":null},"origin":{"User":"bob","Hostname":"127.0.0.1","Port":${p},"ApiKey":"otherkey","CurrentVolume":"","CurrentBranches":null,"DefaultRemoteVolumes":{"admin":{"apples":{"Namespace":"alice","Name":"apples"},"foo":{"Namespace":"bob","Name":"foo"}}}}},"S3Remotes":{}}`,
    );
  });
});
