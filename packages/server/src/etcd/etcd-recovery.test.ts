import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import type { ServerConfig } from '@dotmesh/rpc';
import { createExec } from '@dotmesh/storage';
import { type EtcdMemberState, EtcdMembers } from '@dotmesh/store/etcd-members';
import { Cleanup, makeTempDir } from '@dotmesh/testkit';
import { Etcd3 } from 'etcd3';
import { SILENT_LOGGER } from '../log.ts';
import { ensureClusterPki, LOOPBACK_NAMES } from '../tls/pki.ts';
import { type StartedMember, startManagedMember } from './managed-member.ts';
import { freeLoopbackPort, probeMemberData } from './member-probe.ts';
import { readRecoveryStep, requestRecoveryStep } from './recovery-journal.ts';

/**
 * Every member of a managed etcd moved at once (each pool at a new address), on real etcd with
 * the cluster CA's TLS: no member answers another (each start says `stranded` and reads its own
 * data), the member whose data is newest restarts the cluster from it alone
 * (`force-new-cluster`), the two others set their data aside and join it again as new members;
 * the cluster ends with three voting members at the new addresses and every write, including
 * one the first stopped member never had. The loopback addresses 127.0.0.11–13 stand for the old
 * hosts, 127.0.0.14–16 for the new ones (each node has its own client port: every member also
 * listens on 127.0.0.1).
 */
const exec = createExec({});

interface Node {
  readonly name: string;
  readonly stateDir: string;
  readonly clientPort: number;
}

test('every etcd member moved at once: the newest member restarts the cluster, the others join it again', async () => {
  const cleanup = new Cleanup();
  try {
    const peerPort = await freeLoopbackPort();
    const root = await makeTempDir('etcd-recovery', cleanup);
    // One cluster CA; each node's state holds it (and its key: each issues its own etcd certificate here).
    const caDir = join(root, 'ca');
    await ensureClusterPki({ stateDir: caDir, exec, subjectAltNames: [...LOOPBACK_NAMES] });
    const nodes: Node[] = [];
    for (const name of ['node-a', 'node-b', 'node-c']) {
      const stateDir = join(root, name);
      await mkdir(join(stateDir, 'tls'), { recursive: true, mode: 0o700 });
      for (const f of ['ca.pem', 'ca-key.pem']) await copyFile(join(caDir, 'tls', f), join(stateDir, 'tls', f));
      nodes.push({ name, stateDir, clientPort: await freeLoopbackPort() });
    }
    const [a, b, c] = nodes as [Node, Node, Node];
    const clientUrl = (n: Node, ip: string) => `https://${ip}:${n.clientPort}`;
    const tlsOf = async (n: Node) => {
      const [ca, cert, key] = await Promise.all(
        ['ca.pem', 'etcd.pem', 'etcd-key.pem'].map((f) => readFile(join(n.stateDir, 'tls', f))),
      );
      return { ca: ca!, cert: cert!, key: key! };
    };
    const running = new Map<string, StartedMember>();
    cleanup.add(async () => {
      for (const m of running.values()) await m.process.stop();
    });
    const start = async (
      n: Node,
      address: string,
      o: { endpoints: string[]; joining: boolean; onStranded?: (s: EtcdMemberState) => Promise<void> },
    ) => {
      const started = await startManagedMember({
        config: { stateDir: n.stateDir, etcdEndpoints: o.endpoints } as unknown as ServerConfig,
        member: { bin: 'etcd', clientPort: n.clientPort, peerPort },
        nodeId: n.name,
        address,
        joining: o.joining,
        beforePeerUrlChange: async () => {},
        ...(o.onStranded ? { onStranded: o.onStranded } : {}),
        exec,
        logger: SILENT_LOGGER,
        moveWaitMs: 3000,
      });
      assert.ok(started, `${n.name} runs a member`);
      running.set(n.name, started);
      return started;
    };
    const stop = async (n: Node) => {
      await running.get(n.name)?.process.stop();
      running.delete(n.name);
    };
    const kv = async (n: Node, endpoint: string) =>
      new Etcd3({
        hosts: [endpoint],
        credentials: { rootCertificate: (await tlsOf(n)).ca, certChain: (await tlsOf(n)).cert, privateKey: (await tlsOf(n)).key },
      });

    // A cluster of three at the old addresses, as joins make it.
    await start(a, '127.0.0.11', { endpoints: [], joining: false });
    await start(b, '127.0.0.12', { endpoints: [clientUrl(a, '127.0.0.11')], joining: true });
    await start(c, '127.0.0.13', { endpoints: [clientUrl(a, '127.0.0.11'), clientUrl(b, '127.0.0.12')], joining: true });
    const old = await kv(a, clientUrl(a, '127.0.0.11'));
    await old.put('dots/one').value('before');
    old.close();
    // node-a stops first; the write after it reaches node-b and node-c only.
    await stop(a);
    const later = await kv(b, clientUrl(b, '127.0.0.12'));
    await later.put('dots/two').value('after node-a stopped');
    later.close();
    await stop(b);
    await stop(c);

    // Every node at a new address: no member answers; each start fails saying so, with its data's state.
    const oldEndpoints = [clientUrl(a, '127.0.0.11'), clientUrl(b, '127.0.0.12'), clientUrl(c, '127.0.0.13')];
    const states = new Map<string, EtcdMemberState>();
    for (const [n, ip] of [
      [a, '127.0.0.14'],
      [b, '127.0.0.15'],
    ] as const) {
      await assert.rejects(
        start(n, ip, { endpoints: oldEndpoints, joining: false, onStranded: async (s) => void states.set(n.name, s) }),
        (e: unknown) => isDotmeshError(e) && e.code === 'UNAVAILABLE' && e.data?.stranded === true,
      );
    }
    // The probe only reads: node-c's data read directly gives the same as a stranded start would.
    const tlsFiles = (n: Node) => ({
      ca: join(n.stateDir, 'tls', 'ca.pem'),
      cert: join(n.stateDir, 'tls', 'etcd.pem'),
      key: join(n.stateDir, 'tls', 'etcd-key.pem'),
    });
    const cData = join(c.stateDir, 'etcd');
    const cBefore = await readdir(join(cData, 'member', 'wal'));
    states.set(
      c.name,
      await probeMemberData({
        bin: 'etcd',
        name: c.name,
        dataDir: cData,
        tls: tlsFiles(c),
        logger: SILENT_LOGGER,
        probeDir: root,
      }),
    );
    assert.deepEqual(await readdir(join(cData, 'member', 'wal')), cBefore, 'the probe wrote nothing in the member data');
    await assert.rejects(stat(join(root, 'dotmesh-etcd-probe-node-c')), 'the probe copy is gone');
    const [sa, sb, sc] = [states.get(a.name)!, states.get(b.name)!, states.get(c.name)!];
    assert.ok(sb.revision > sa.revision, `node-b's data (revision ${sb.revision}) is newer than node-a's (${sa.revision})`);
    assert.equal(sb.revision, sc.revision);
    assert.equal(new Set([sa.clusterId, sb.clusterId, sc.clusterId]).size, 1, 'one cluster');

    // node-b restarts the cluster from its data at its new address.
    await requestRecoveryStep(b.stateDir, 'r1', 'force-new-cluster');
    const recovered = await start(b, '127.0.0.15', { endpoints: oldEndpoints, joining: false });
    assert.equal(recovered.status.members, 1);
    assert.deepEqual(await readRecoveryStep(b.stateDir), { id: 'r1', role: 'force-new-cluster', done: true });
    // node-c and node-a set their data aside and join it again.
    for (const [n, ip] of [
      [c, '127.0.0.16'],
      [a, '127.0.0.14'],
    ] as const) {
      await requestRecoveryStep(n.stateDir, 'r1', 'rejoin');
      await start(n, ip, { endpoints: [clientUrl(b, '127.0.0.15')], joining: true });
      assert.equal((await readRecoveryStep(n.stateDir))?.done, true);
      const aside = join(`${join(n.stateDir, 'etcd')}.before-recovery-r1`, 'member');
      assert.deepEqual(await readdir(aside), ['snap'], `${n.name}'s key-value data is kept aside, without its WAL`);
    }
    const members = new EtcdMembers({ endpoints: [clientUrl(b, '127.0.0.15')], ...(await tlsOf(b)) });
    try {
      const listed = await members.list();
      assert.deepEqual(listed.map((m) => [m.name, m.peerUrls.join(), m.learner]).sort(), [
        ['node-a', `https://127.0.0.14:${peerPort}`, false],
        ['node-b', `https://127.0.0.15:${peerPort}`, false],
        ['node-c', `https://127.0.0.16:${peerPort}`, false],
      ]);
    } finally {
      members.close();
    }
    // node-a, which never had the second write, serves it now; writes work.
    const fromA = await kv(a, clientUrl(a, '127.0.0.14'));
    try {
      assert.equal(await fromA.get('dots/one').string(), 'before');
      assert.equal(await fromA.get('dots/two').string(), 'after node-a stopped');
      await fromA.put('dots/three').value('after the recovery');
    } finally {
      fromA.close();
    }
    // A restart of node-b with its journal done forces nothing: the three members stay.
    await stop(b);
    const again = await start(b, '127.0.0.15', {
      endpoints: [clientUrl(a, '127.0.0.14'), clientUrl(c, '127.0.0.16')],
      joining: false,
    });
    assert.equal(again.status.members, 3);
    const fromB = await kv(b, clientUrl(b, '127.0.0.15'));
    try {
      assert.equal(await fromB.get('dots/three').string(), 'after the recovery');
    } finally {
      fromB.close();
    }
  } finally {
    await cleanup.run();
  }
});
