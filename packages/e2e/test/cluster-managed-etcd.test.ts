import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
  createHosts,
  findK8sTools,
  makeTempDir,
  SERVER_BUNDLE,
  skipUnless,
  type TestHost,
  waitFor,
} from '@dotmesh/testkit';
import { type HostNode, makeHostNode, members, tokenFor } from './cluster-host-node.ts';

/**
 * docs/cluster.md, "Make a three-node cluster" with the etcd Dotmesh runs: `dm cluster init
 * --store etcd` without endpoints starts a managed etcd member (TLS with the cluster CA), and
 * each of two `dm cluster join`s adds one (a learner, promoted once caught up). Then a crash of
 * one member is seen and it is started again; the first node's server and etcd are killed with
 * -9 and the other two keep serving (list, commits through either); `dm cluster remove-node`
 * from another node takes the gone node's member out, and that node, started again, runs no
 * member and serves through the members left. One cluster of three test hosts, every
 * path and port the test's own; the members are real etcd processes in the hosts' namespaces.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);

const stateFile = (n: HostNode, name: string) => join(n.poolDir, 'server', name);
const pidIn = async (file: string) => Number.parseInt(await readFile(file, 'utf8'), 10);
/** A process that runs (a zombie does not). */
const alive = (pid: number) => {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

/**
 * Freezes `n`'s etcd member (SIGSTOP, not a kill: the node's supervisor would start a killed
 * member again at once); returns what thaws it, also run by `cleanup`.
 */
async function freezeMember(n: HostNode, cleanup: Cleanup): Promise<() => void> {
  const frozen = await pidIn(stateFile(n, 'etcd.pid'));
  process.kill(frozen, 'SIGSTOP');
  let resumed = false;
  const resume = () => {
    if (resumed) return;
    resumed = true;
    try {
      process.kill(frozen, 'SIGCONT');
    } catch {}
  };
  cleanup.add(resume, `thaw the frozen etcd member of ${n.host.address}`);
  return resume;
}

/** The commit ids `dm log` lists, oldest first. */
const logIds = (log: string) => [...log.matchAll(/^commit (\S+)/gm)].map((m) => m[1]!);

/** DumpInternalState of `n`'s server. */
const dump = async (n: HostNode) => JSON.parse(await n.ok(['debug', 'DumpInternalState'])) as Record<string, string>;

/**
 * The commits `n`'s pool holds of volume `fsId`, from the pool on disk (`<root>/fs/<fsId>/commits/`,
 * the btrfs driver's layout; the root is a few levels under the pool dir).
 */
function poolCommitIds(n: HostNode, fsId: string): string[] {
  const find = (dir: string, depth: number): string | undefined => {
    const commits = join(dir, 'fs', fsId, 'commits');
    if (existsSync(commits)) return commits;
    if (depth === 0) return undefined;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name === 'fs') continue;
      const found = find(join(dir, e.name), depth - 1);
      if (found) return found;
    }
    return undefined;
  };
  const dir = find(n.poolDir, 3);
  assert.ok(dir, `volume ${fsId} is in the pool of ${n.host.address}`);
  return readdirSync(dir);
}

describe('a cluster on managed etcd: init and two joins make three voting members, and it survives the loss of one', {
  skip,
}, () => {
  const cleanup = new Cleanup();
  let n1: HostNode;
  let n2: HostNode;
  let n3: HostNode;
  let tokens: string;
  before(async () => {
    const hosts = (await createHosts({ cleanup, count: 3 })) as [TestHost, TestHost, TestHost];
    [n1, n2, n3] = (await Promise.all(hosts.map((h) => makeHostNode(cleanup, h)))) as [HostNode, HostNode, HostNode];
    tokens = await makeTempDir('tokens', cleanup);
  });
  after(() => cleanup.run());

  const nodeId = async (n: HostNode) =>
    (JSON.parse(await n.ok(['debug', 'DumpInternalState', 'myNodeId'])) as Record<string, string>).myNodeId!;

  let ids: [string, string, string];

  test('init starts a managed etcd member; two joins add theirs: three voting members, TLS of the cluster CA', async () => {
    const first = await n1.ok(['cluster', 'init', '--store', 'etcd', ...n1.nodeArgs()]);
    const own = `https://${n1.host.address}:${n1.etcdClientPort}`;
    assert.ok(first.includes(`store etcd at ${own}.`), first);
    assert.match(first, /This host runs etcd member [0-9a-f]+ of the cluster's store \(voting; 1 voting of 1 member\(s\)\)/);
    const ca = new X509Certificate(await readFile(stateFile(n1, 'tls/ca.pem')));
    for (const [i, n] of [n2, n3].entries()) {
      const file = join(tokens, `join-${i}`);
      const t = await tokenFor(n1, file);
      const joined = await n.ok(['cluster', 'join', t.address, '--ca-hash', t.caHash, '--token-file', file, ...n.nodeArgs()]);
      assert.match(
        joined,
        new RegExp(`This host runs etcd member [0-9a-f]+ of the cluster's store \\(voting; ${i + 2} voting of ${i + 2} member`),
      );
      const etcdCert = new X509Certificate(await readFile(stateFile(n, 'tls/etcd.pem')));
      assert.ok(etcdCert.checkIssued(ca) && etcdCert.verify(ca.publicKey), 'its etcd certificate is of the cluster CA');
      assert.ok(!existsSync(stateFile(n, 'tls/ca-key.pem')), 'a joined node never gets the CA key');
      const config = JSON.parse(await readFile(stateFile(n, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.ok((config.etcdEndpoints as string[]).includes(`https://${n.host.address}:${n.etcdClientPort}`));
    }
    const { ApiKey } = JSON.parse(await n1.ok(['debug', 'GetApiKey'])) as { ApiKey: string };
    for (const n of [n2, n3]) {
      await n.ok(['remote', 'add', 'local', `admin@${n.host.address}:${n.port}`], { DOTMESH_PASSWORD: ApiKey });
    }
    ids = (await Promise.all([n1, n2, n3].map(nodeId))) as [string, string, string];
    for (const n of [n1, n2, n3]) {
      const list = await members(n);
      assert.deepEqual(list.map((m) => m.name).sort(), [...ids].sort(), 'one member per node, named by its node id');
      assert.ok(
        list.every((m) => m.isLearner !== true),
        'every member votes',
      );
      assert.ok(list.every((m) => m.peerURLs.every((u) => u.startsWith('https://'))));
    }
    // Without a certificate of the cluster CA etcd answers nothing.
    const anonymous = await n2.host
      .exec(
        'curl',
        [
          '-sS',
          '-k',
          '--max-time',
          '5',
          `https://${n1.host.address}:${n1.etcdClientPort}/v3/cluster/member/list`,
          '-X',
          'POST',
          '-d',
          '{}',
        ],
        {
          timeoutMs: 10_000,
        },
      )
      .then(
        (r) => r.stdout,
        (e: unknown) => String((e as Error).message),
      );
    assert.doesNotMatch(anonymous, /"members"/, 'etcd refuses a client without a certificate');
  });

  test("a server started before two joins follows the member list: with its own member frozen it reaches the store through the joiners' members", async () => {
    const all = [n1, n2, n3].map((n) => `https://${n.host.address}:${n.etcdClientPort}`).sort();
    const endpointsOf = async (n: HostNode) =>
      [...(JSON.parse(await readFile(stateFile(n, 'config.json'), 'utf8')) as { etcdEndpoints: string[] }).etcdEndpoints].sort();
    // Node 1's server started with its own member alone; it reads the member list every 30 s
    // and keeps what it found in its config.
    await waitFor(async () => JSON.stringify(await endpointsOf(n1)) === JSON.stringify(all), {
      timeoutMs: 90_000,
      intervalMs: 1000,
      what: "node 1's store client to follow the three members",
    });
    assert.match(
      await readFile(stateFile(n1, 'dotmesh-server.log'), 'utf8'),
      /the etcd members changed: the store client uses the current ones/,
    );
    const resume = await freezeMember(n1, cleanup);
    try {
      // A store write through node 1 (a join token lives in the store), read through node 2.
      const file = join(tokens, 'while-frozen');
      const created = await waitFor(
        async () => {
          const r = await n1.dm(['cluster', 'token', 'create', '--token-file', file]);
          return r.code === 0 ? r.stdout : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 2000, what: 'a store write through node 1 while its member is frozen' },
      );
      const id = /Join token (\S+) /.exec(created)?.[1];
      assert.ok(id, created);
      assert.match(await n2.ok(['cluster', 'token', 'list']), new RegExp(`^${id} `, 'm'), 'node 2 reads what node 1 wrote');
      await n1.ok(['cluster', 'token', 'delete', id]);
    } finally {
      resume();
    }
    await waitFor(async () => (await members(n1)).length === 3, { timeoutMs: 30_000, intervalMs: 500, what: 'member 1 back' });
  });

  test('a crashed etcd member is seen, said and started again', async () => {
    const before = await pidIn(stateFile(n3, 'etcd.pid'));
    process.kill(before, 'SIGKILL');
    const after = await waitFor(
      async () => {
        const pid = await pidIn(stateFile(n3, 'etcd.pid')).catch(() => 0);
        return pid !== before && pid > 0 && alive(pid) ? pid : 0;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: "node 3's etcd member to be started again" },
    );
    assert.notEqual(after, before);
    const log = await readFile(stateFile(n3, 'dotmesh-server.log'), 'utf8');
    assert.match(log, /the managed etcd member exited \(SIGKILL\): starting it again/);
    await waitFor(async () => (await members(n3)).length === 3, { timeoutMs: 30_000, intervalMs: 500, what: 'member 3 back' });
  });

  test('kill -9 of the first node (server and etcd): the other two serve; remove-node takes its member out', async () => {
    await n2.ok(['init', 'shared']);
    const mnt = join(n2.home, 'shared-mnt');
    await n2.ok(['mount', 'shared', mnt]);
    await writeFile(join(mnt, 'a'), 'before the loss');
    await n2.ok(['switch', 'shared']);
    await n2.ok(['commit', '-m', 'before the loss']);

    const serverPid = await pidIn(stateFile(n1, 'dotmesh-server.pid'));
    const etcdPid = await pidIn(stateFile(n1, 'etcd.pid'));
    process.kill(serverPid, 'SIGKILL');
    process.kill(etcdPid, 'SIGKILL');
    await waitFor(() => !alive(serverPid) && !alive(etcdPid), { timeoutMs: 10_000, what: "node 1's server and etcd gone" });

    for (const n of [n2, n3]) {
      assert.match(await n.ok(['list', '-H']), /^shared\t/m, 'the dot is listed');
    }
    await writeFile(join(mnt, 'b'), 'after the loss');
    await n2.ok(['commit', '-m', 'through node 2 after the loss']);
    await n3.ok(['switch', 'shared']);
    await n3.ok(['commit', '-m', 'through node 3 after the loss']);
    const log = await n2.ok(['log']);
    assert.match(log, /through node 2 after the loss/);
    assert.match(log, /through node 3 after the loss/);

    const removed = await n2.ok(['cluster', 'remove-node', ids[0]]);
    assert.match(removed, /Removed its etcd member: the cluster's etcd has 2 member\(s\) left\./);
    const left = await members(n3);
    assert.deepEqual(left.map((m) => m.name).sort(), [ids[1], ids[2]].sort());
    // Two members of two: the store still takes writes.
    await n3.ok(['commit', '-m', 'after the removal']);
    assert.match(await n2.ok(['log']), /after the removal/);
  });

  test('quorum lost (one of two members frozen): every write fails fast with UNAVAILABLE, reads and mounted data work; quorum back, writes resume without a restart and the pool holds no commit the store lacks', async (t) => {
    const mnt = join(n2.home, 'shared-mnt');
    const commitsBefore = logIds(await n2.ok(['log']));
    const resume = await freezeMember(n3, cleanup);
    try {
      // (The member is thawed however this ends: the later tests need it.)
      await writeFile(join(mnt, 'c'), 'while etcd has no quorum');
      // Every kind of write answers with a clear error, each within a few seconds (the store's
      // bound is measured in bench/, R7; this is a behaviour check on a loaded machine).
      const writes: Array<[string, string[]]> = [
        ['commit', ['commit', '-m', 'without quorum']],
        ['create', ['init', 'without-quorum']],
        ['branch', ['checkout', '-b', 'without-quorum']],
        ['commit again', ['commit', '-m', 'without quorum again']],
      ];
      for (const [what, args] of writes) {
        const started = Date.now();
        const refused = await n2.dm(args);
        const took = Date.now() - started;
        t.diagnostic(`${what} without quorum answered in ${took} ms`);
        assert.notEqual(refused.code, 0, `the ${what} is refused: ${refused.stdout}`);
        // Node 2's store client uses both members, so its lease keep-alives to the frozen one fail
        // too: once its fence passes, a write is refused by that first ("lost contact").
        assert.match(
          refused.stderr,
          /etcd .*unavailable|cluster store did not confirm|lost contact with the cluster store|cluster store is unavailable|waiting for the cluster store/i,
          `the error of the ${what} says the store is unavailable`,
        );
        assert.ok(took < 5000, `the ${what} answered in ${took} ms, not after the store's own timeouts`);
      }
      for (const n of [n2, n3]) {
        assert.match(await n.ok(['list', '-H']), /^shared\t/m, 'listing works without quorum');
        const log = await n.ok(['log']);
        assert.match(log, /after the removal/, 'commits are listed without quorum');
        assert.doesNotMatch(log, /without quorum/, 'no refused commit is listed');
      }
      assert.equal(await readFile(join(mnt, 'a'), 'utf8'), 'before the loss', 'mounted data is readable');
    } finally {
      resume();
    }

    // etcd elects a leader again; the server needs no restart.
    await waitFor(async () => (await n2.dm(['commit', '-m', 'quorum back'])).code === 0, {
      timeoutMs: 120_000,
      intervalMs: 1000,
      what: 'a commit once quorum is back',
    });
    const log = await n2.ok(['log']);
    assert.match(log, /quorum back/);
    // A write whose store transaction timed out is settled once the store answers: kept (then
    // listed) or undone in the pool. Either way the pool and the store hold the same commits.
    await waitFor(async () => (await dump(n2))['mutations.unsettled'] === '', {
      timeoutMs: 30_000,
      intervalMs: 500,
      what: 'every timed-out write to be settled',
    });
    const stored = logIds(await n2.ok(['log']));
    assert.ok(
      commitsBefore.every((id) => stored.includes(id)),
      'no commit made before the outage is lost',
    );
    const state = await dump(n2);
    const dotId = Object.entries(state)
      .find(([k, v]) => /^dots\.[^.]+\.name$/.test(k) && v === 'shared')?.[0]
      .split('.')[1];
    const fsId = state[`dots.${dotId}.branches.master.id`];
    assert.ok(fsId, 'the dot is in the dump');
    assert.deepEqual(
      poolCommitIds(n2, fsId).sort(),
      [...stored].sort(),
      "the master's pool holds exactly the commits the store lists",
    );
    // Node 3's lease may have expired during the outage: it takes a new one and advertises
    // itself again before the other nodes take calls it passes on ("unknown node" until then).
    await waitFor(async () => /quorum back/.test((await n3.dm(['log'])).stdout), {
      timeoutMs: 120_000,
      intervalMs: 1000,
      what: "node 3's log to show the commit made once quorum was back",
    });
  });

  test('remove-node of a live node: its supervisor stops its member for good, saying why, and the node goes on with the members left', async () => {
    const etcdPid = await pidIn(stateFile(n3, 'etcd.pid'));
    const dataDir = readFileSync(`/proc/${etcdPid}/cmdline`, 'utf8')
      .split('\0')
      .find((a) => a.startsWith('--data-dir='));
    assert.ok(dataDir, 'the member runs on its data dir');
    const logBefore = (await readFile(stateFile(n3, 'dotmesh-server.log'), 'utf8')).length;
    const removed = await n2.ok(['cluster', 'remove-node', ids[2]]);
    assert.match(removed, /Removed its etcd member: the cluster's etcd has 1 member\(s\) left\./);
    await waitFor(() => !alive(etcdPid), { timeoutMs: 30_000, intervalMs: 200, what: "node 3's removed member to exit" });
    const etcdOn = () =>
      readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .filter((d) => {
          try {
            return readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').includes(dataDir) && alive(Number(d));
          } catch {
            return false;
          }
        });
    // The supervisor's longest restart delay is 10 s: 25 s without a new member is for good.
    const deadline = Date.now() + 25_000;
    while (Date.now() < deadline) {
      assert.deepEqual(etcdOn(), [], "no etcd runs on node 3's member data dir again");
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(!existsSync(stateFile(n3, 'etcd.pid')), 'its pid file is gone');
    const log = (await readFile(stateFile(n3, 'dotmesh-server.log'), 'utf8')).slice(logBefore);
    assert.match(
      log,
      /the managed etcd member exited because the cluster removed it \(dm cluster remove-node\): not starting it again/,
    );
    assert.doesNotMatch(log, /exited \([^)]*\): starting it again/, 'no restart was tried');
    // Node 3 now uses node 2's member alone, and keeps that for its next start.
    const own2 = `https://${n2.host.address}:${n2.etcdClientPort}`;
    await waitFor(
      async () => {
        const c = JSON.parse(await readFile(stateFile(n3, 'config.json'), 'utf8')) as Record<string, unknown>;
        return c.etcdMember === null && JSON.stringify(c.etcdEndpoints) === JSON.stringify([own2]);
      },
      { timeoutMs: 30_000, intervalMs: 500, what: "node 3's config to name the members left and no member of its own" },
    );
    await n3.ok(['init', 'after-member-removed']);
    assert.match(await n2.ok(['list', '-H']), /^after-member-removed\t/m, 'a write through node 3 reached the store');
  });

  test('a node whose member was removed while it was down starts again without it, saying why, and serves through the members left', async () => {
    // Node 1 was killed with -9 and its member removed meanwhile (above): its config still names its member.
    const config = async () => JSON.parse(await readFile(stateFile(n1, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.notEqual((await config()).etcdMember, null, 'node 1 never saw its removal');
    await n1.ok(['cluster', 'start', '--use-pool-dir', n1.poolDir, '--server-bin', SERVER_BUNDLE]);
    assert.match(
      await readFile(stateFile(n1, 'dotmesh-server.log'), 'utf8'),
      /this node’s etcd member was removed from the cluster while the node was down .*: not starting it; this node uses the remaining members/,
    );
    assert.equal((await config()).etcdMember, null, 'its next start runs no member either');
    assert.deepEqual(
      (await members(n2)).map((m) => m.name),
      [ids[1]],
      'no member was added back',
    );
    await n1.ok(['init', 'after-coming-back']);
    assert.match(await n2.ok(['list', '-H']), /^after-coming-back\t/m, 'a write through node 1 reached the store');
  });
});

/** etcd 3.6 (the Kubernetes test tools' build) runs the members as well as Debian's 3.4. */
const skip36 = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'k8s']);

describe('managed etcd 3.6: init and a join make two voting members; dm cluster stop and start take the member along', {
  skip: skip36,
}, () => {
  const cleanup = new Cleanup();
  after(() => cleanup.run());

  test('two members on etcd 3.6; stop stops the member after the server, start starts it before', async () => {
    const found = findK8sTools();
    assert.ok(found.ok, 'the k8s capability found the tools');
    const etcd36 = found.tools.bin('etcd');
    const hosts = (await createHosts({ cleanup, count: 2 })) as [TestHost, TestHost];
    const [a, b] = await Promise.all(hosts.map((h) => makeHostNode(cleanup, h, ['--etcd-bin', etcd36])));
    const tokens = await makeTempDir('tokens', cleanup);
    await a!.ok(['cluster', 'init', '--store', 'etcd', ...a!.nodeArgs()]);
    const file = join(tokens, 'join');
    const t = await tokenFor(a!, file);
    const joined = await b!.ok(['cluster', 'join', t.address, '--ca-hash', t.caHash, '--token-file', file, ...b!.nodeArgs()]);
    assert.match(joined, /\(voting; 2 voting of 2 member\(s\)\)/);
    const { ApiKey } = JSON.parse(await a!.ok(['debug', 'GetApiKey'])) as { ApiKey: string };
    await b!.ok(['remote', 'add', 'local', `admin@${b!.host.address}:${b!.port}`], { DOTMESH_PASSWORD: ApiKey });
    const list = await members(b!);
    assert.equal(list.length, 2);
    assert.ok(list.every((m) => m.isLearner !== true));
    const etcdPid = await pidIn(stateFile(a!, 'etcd.pid'));
    assert.match(readFileSync(`/proc/${etcdPid}/cmdline`, 'utf8').split('\0')[0]!, /k8s-tools/, 'the member runs etcd 3.6');

    await a!.ok(['cluster', 'stop', '--use-pool-dir', a!.poolDir]);
    assert.ok(!alive(etcdPid), 'the member stopped with the server');
    assert.ok(!existsSync(stateFile(a!, 'etcd.pid')));
    await a!.ok(['cluster', 'start', '--use-pool-dir', a!.poolDir, '--server-bin', SERVER_BUNDLE]);
    const again = await pidIn(stateFile(a!, 'etcd.pid'));
    assert.ok(alive(again) && again !== etcdPid, 'start started the member again');
    await a!.ok(['init', 'after-restart']);
    assert.match(await b!.ok(['list', '-H']), /^after-restart\t/m, 'the other node sees what the restarted one wrote');
  });
});
