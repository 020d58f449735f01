import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { connect, isIP } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DotmeshError } from '@dotmesh/core';
import { type EtcdMemberConfig, type EtcdMemberStatus, etcdMemberFiles, type ServerConfig } from '@dotmesh/rpc';
import type { Exec } from '@dotmesh/storage';
import { type EtcdMember, type EtcdMemberState, EtcdMembers, votingClientUrls } from '@dotmesh/store/etcd-members';
import type { Logger } from '../log.ts';
import { ensureNodeCert, LOOPBACK_NAMES } from '../tls/pki.ts';
import { EtcdProcess } from './etcd-process.ts';
import { probeMemberData } from './member-probe.ts';
import { movePeerUrl } from './peer-url-move.ts';
import { markRecoveryStepDone, type RecoveryStep, readRecoveryStep } from './recovery-journal.ts';

export interface StartedMember {
  readonly process: EtcdProcess;
  /** The client URLs of every member that has started (the store's endpoints). */
  readonly endpoints: string[];
  readonly status: EtcdMemberStatus;
}

/** Members a cluster grows to by joins; further nodes use the store without a member. */
export const MAX_MANAGED_MEMBERS = 3;
const LEARNER_WAIT_MS = 120_000;
const READY_WAIT_MS = 60_000;

function url(address: string, port: number): string {
  return `https://${isIP(address) === 6 ? `[${address}]` : address}:${port}`;
}

/**
 * Runs this node's managed etcd member (see `ServerConfig.etcdMember`), before the server
 * opens the store:
 * - its certificate (`tls/etcd.pem`, CN = the node id, for its address and loopback, server and
 *   client use) is issued here on a node holding the CA key, else it came with the join;
 * - a data dir that holds a member starts as it is (restarts; etcd ignores the bootstrap flags),
 *   unless the other members' cluster has no such member any more (removed while this node was
 *   down: null, this node runs no member); when the node's address changed since the member
 *   last ran (its pool moved to another host), the member's peer URL is changed first, through
 *   the other members (peer-url-move.ts) — or, when the config names none (a cluster of one
 *   node), through itself once it runs on its data at the new address;
 * - an empty one on the first node bootstraps a new cluster of one;
 * - an empty one on a node that joined (`joining`) is added to the cluster as a learner (after
 *   the one learner etcd allows at a time is promoted), unless the cluster has three members
 *   already (null: this node runs no member); then started, and promoted once etcd accepts it
 *   (it has caught up with the leader).
 * - a pending step of an etcd recovery (recovery-journal.ts): `force-new-cluster` starts the
 *   member on its data as a new cluster of one at this node's address (the other members
 *   dropped, its own peer URL moved through itself); `rejoin` sets the data dir aside
 *   (`<dataDir>.before-recovery-<id>`, with its status file: kept, never served again) and the
 *   member joins as a new one, as an empty data dir of a joining node does.
 * - a moved member that no other member answers (every member moved at once: `stranded`): its
 *   data is read (member-probe.ts) and `onStranded` told, before the start fails as before.
 * Peer and client traffic are TLS with certificates of the cluster CA required on both.
 */
export async function startManagedMember(o: {
  readonly config: ServerConfig;
  readonly member: EtcdMemberConfig;
  readonly nodeId: string;
  readonly address: string;
  readonly joining: boolean;
  /** Resolves once the node's earlier holder is gone (a moved member's peer URL changes only then). */
  readonly beforePeerUrlChange: (endpoints: readonly string[]) => Promise<void>;
  /** Told what this member's data holds when its move found no other member answering. */
  readonly onStranded?: (state: EtcdMemberState & { readonly lastPeerUrl: string }) => Promise<void>;
  readonly exec: Exec;
  readonly logger: Logger;
  /** How long a moved member waits for the other members to take its new peer URL (default 120 s; the config's etcdMoveWaitSeconds). */
  readonly moveWaitMs?: number;
}): Promise<StartedMember | null> {
  const files = etcdMemberFiles(o.config);
  const hasCa = await readFile(files.ca).then(
    () => true,
    () => false,
  );
  if (!hasCa) throw new DotmeshError('POOL_UNAVAILABLE', `no cluster CA in ${files.ca}: the managed etcd member needs one`);
  await ensureNodeCert({
    stateDir: o.config.stateDir,
    exec: o.exec,
    nodeId: o.nodeId,
    addresses: [...new Set([o.address, ...LOOPBACK_NAMES])],
    name: 'etcd',
  });
  const [ca, cert, key] = await Promise.all([readFile(files.ca), readFile(files.cert), readFile(files.key)]);
  const peerUrl = url(o.address, o.member.peerPort);
  const clientUrl = url(o.address, o.member.clientPort);
  const loopbackUrl = url('127.0.0.1', o.member.clientPort);
  await mkdir(files.dataDir, { recursive: true, mode: 0o700 });
  const recovery = await readRecoveryStep(o.config.stateDir);
  const pending = recovery && !recovery.done ? recovery : undefined;
  if (pending?.role === 'rejoin') await setAside(files, pending, o.logger);
  const fresh = (await readdir(files.dataDir)).length === 0;
  const forcing = pending?.role === 'force-new-cluster';
  if (forcing && fresh) {
    throw new DotmeshError(
      'CONFLICT',
      `etcd recovery ${pending.id} asks this node to restart the cluster from its member's data, and ${files.dataDir} is empty`,
      { hint: 'the operator chooses a pool whose member has data: see its Events (EtcdRecovery)' },
    );
  }

  // A new etcd cluster is made only by the node that made the cluster (it holds the CA key):
  // any other node with an empty data dir must join one.
  const hasCaKey = await readFile(files.caKey).then(
    () => true,
    () => false,
  );
  if (pending?.role === 'rejoin' && !o.joining) {
    throw new DotmeshError(
      'CONFLICT',
      `etcd recovery ${pending.id} asks this node's member to join the recovered cluster, and this node has no join to do it with`,
      {
        hint: 'the operator gives its pod a join Secret once the recovered node serves: delete the pod so that it is made again',
      },
    );
  }
  if (fresh && !o.joining && !hasCaKey) {
    throw new DotmeshError(
      'CONFLICT',
      `this node has no etcd data in ${files.dataDir} and did not make the cluster: it cannot start a new etcd cluster`,
      {
        hint: 'a node joins a cluster with dm cluster join (a new token); to make a new cluster on this host, dm cluster reset --destroy-data first',
      },
    );
  }
  let initialCluster = `${o.nodeId}=${peerUrl}`;
  let state: 'new' | 'existing' = 'new';
  // The peer URL this member last ran with (absent: a status written before it was recorded).
  const lastPeerUrl = fresh ? undefined : await readLastPeerUrl(files.statusFile);
  const moved = lastPeerUrl !== undefined && lastPeerUrl !== peerUrl;
  const oldClientUrl = moved ? url(new URL(lastPeerUrl).hostname.replace(/^\[|\]$/g, ''), o.member.clientPort) : undefined;
  // A forced new cluster has no other member: its own peer URL moves through itself.
  const others = forcing ? [] : o.config.etcdEndpoints.filter((e) => e !== clientUrl && e !== loopbackUrl && e !== oldClientUrl);
  if (
    !fresh &&
    !forcing &&
    (await removedWhileDown({
      others,
      nodeId: o.nodeId,
      peerUrls: [peerUrl, ...(lastPeerUrl ? [lastPeerUrl] : [])],
      ca,
      cert,
      key,
    }))
  ) {
    o.logger.warn(
      { peerUrl, members: others },
      'this node’s etcd member was removed from the cluster while the node was down (dm cluster remove-node, or the Kubernetes operator after the node left): not starting it; this node uses the remaining members',
    );
    return null;
  }
  // A member of one (the config names no other) moves through itself once it runs.
  const movesAlone = moved && others.length === 0;
  const move = (endpoints: readonly string[]) => {
    o.logger.info({ from: lastPeerUrl, to: peerUrl }, "this node's address changed: moving its etcd member's peer URL");
    return movePeerUrl({
      nodeId: o.nodeId,
      peerUrl,
      endpoints,
      alone: movesAlone,
      tls: { ca, cert, key },
      beforeChange: o.beforePeerUrlChange,
      logger: o.logger,
      ...(o.moveWaitMs === undefined ? {} : { waitMs: o.moveWaitMs }),
    });
  };
  if (moved && !movesAlone) {
    await move(others).catch(async (e: unknown) => {
      if (o.onStranded && lastPeerUrl && e instanceof DotmeshError && e.data?.stranded === true) {
        const state = await probeMemberData({
          bin: o.member.bin,
          name: o.nodeId,
          dataDir: files.dataDir,
          tls: { ca: files.ca, cert: files.cert, key: files.key },
          logger: o.logger,
        });
        await o.onStranded({ ...state, lastPeerUrl });
      }
      throw e;
    });
  }
  if (pending?.role === 'rejoin') await markRecoveryStepDone(o.config.stateDir, pending);
  if (fresh && o.joining) {
    const cluster = new EtcdMembers({ endpoints: others, ca, cert, key });
    try {
      const members = await addAsLearner(cluster, peerUrl, o.logger);
      if (members === null) return null;
      initialCluster = members.map((m) => `${m.name === '' ? o.nodeId : m.name}=${m.peerUrls[0]}`).join(',');
      state = 'existing';
    } finally {
      cluster.close();
    }
  }
  const listenClient = [...new Set([clientUrl, loopbackUrl])].join(',');
  const args = [
    `--name=${o.nodeId}`,
    `--data-dir=${files.dataDir}`,
    `--listen-client-urls=${listenClient}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=${initialCluster}`,
    `--initial-cluster-state=${state}`,
    `--initial-cluster-token=dotmesh-${o.nodeId}`,
    ...(forcing ? ['--force-new-cluster'] : []),
    `--cert-file=${files.cert}`,
    `--key-file=${files.key}`,
    '--client-cert-auth',
    `--trusted-ca-file=${files.ca}`,
    `--peer-cert-file=${files.cert}`,
    `--peer-key-file=${files.key}`,
    '--peer-client-cert-auth',
    `--peer-trusted-ca-file=${files.ca}`,
    '--logger=zap',
    '--log-outputs=stderr',
  ];
  const proc = new EtcdProcess(
    { bin: o.member.bin, args, dataDir: files.dataDir, logFile: files.logFile, pidFile: files.pidFile },
    o.logger,
  );
  await proc.start();
  try {
    await waitListening('127.0.0.1', o.member.clientPort, proc, files.logFile);
    if (movesAlone) await move([loopbackUrl]);
    const status = await settle({ proc, nodeId: o.nodeId, peerUrl, clientUrl, others, ca, cert, key, logger: o.logger });
    await writeFile(files.statusFile, `${JSON.stringify({ ...status.status, peerUrl })}\n`, { mode: 0o644 });
    if (forcing) {
      // Done before the server serves: others join this cluster only through it, so a forced
      // start repeated after a kill before this line drops no member that joined.
      await markRecoveryStepDone(o.config.stateDir, pending);
      o.logger.warn(
        { recovery: pending.id, peerUrl },
        "etcd recovery: this node's member restarted the cluster from its data, as its only member",
      );
    }
    proc.healthy();
    o.logger.info({ ...status.status, endpoints: status.endpoints }, 'managed etcd member ready');
    return { process: proc, endpoints: status.endpoints, status: status.status };
  } catch (e) {
    await proc.stop();
    throw e;
  }
}

/**
 * A rejoining member's data dir and status file go aside (renamed, never served again) and the
 * member joins as a new one. What is kept is the member's key-value data (`member/snap`, for an
 * admin to read); its WAL goes (etcd preallocates it in 64 MB files, and a pool volume has no
 * room for two members' logs). Renames are atomic and the WAL's removal is done again by the
 * next start if a kill stopped it.
 */
async function setAside(files: { dataDir: string; statusFile: string }, step: RecoveryStep, logger: Logger): Promise<void> {
  const aside = `${files.dataDir}.before-recovery-${step.id}`;
  const entries = await readdir(files.dataDir).catch(() => []);
  if (entries.length > 0) {
    await rename(files.dataDir, aside);
    await rename(files.statusFile, `${files.statusFile}.before-recovery-${step.id}`).catch(() => undefined);
    await mkdir(files.dataDir, { recursive: true, mode: 0o700 });
    logger.warn(
      { recovery: step.id, aside },
      "etcd recovery: this node's member data set aside; the member joins the recovered cluster as a new one",
    );
  }
  await rm(join(aside, 'member', 'wal'), { recursive: true, force: true });
}

/** The `peerUrl` the status file of the member's last start names (undefined: none recorded). */
async function readLastPeerUrl(statusFile: string): Promise<string | undefined> {
  try {
    const status = JSON.parse(await readFile(statusFile, 'utf8')) as { peerUrl?: unknown };
    return typeof status.peerUrl === 'string' && /^https:\/\//.test(status.peerUrl) ? status.peerUrl : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the other members' cluster no longer has this node's member (none named by its id nor
 * at one of its peer URLs: it was removed while this node was down), asking the other members
 * one by one. Unknown (none answers in 3 s: a whole cluster starting again) counts as not
 * removed: it starts as before.
 */
async function removedWhileDown(o: {
  others: readonly string[];
  /** This node's id (the member's name) and the peer URLs it may be listed at. */
  nodeId: string;
  peerUrls: readonly string[];
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}): Promise<boolean> {
  // One endpoint at a time: a member that is down (refusing connections) must not hide the
  // answer of one that is up.
  for (const endpoint of o.others) {
    const cluster = new EtcdMembers({ endpoints: [endpoint], ca: o.ca, cert: o.cert, key: o.key, requestTimeoutMs: 3000 });
    try {
      const members = await cluster.list();
      return members.length > 0 && !members.some((m) => m.name === o.nodeId || m.peerUrls.some((u) => o.peerUrls.includes(u)));
    } catch {
      // the next member
    } finally {
      cluster.close();
    }
  }
  return false;
}

/** Adds `peerUrl` as a learner (or finds it added by an earlier attempt); null when the cluster is full. */
async function addAsLearner(cluster: EtcdMembers, peerUrl: string, logger: Logger): Promise<EtcdMember[] | null> {
  const deadline = Date.now() + LEARNER_WAIT_MS;
  let why = '';
  for (;;) {
    try {
      const members = await cluster.list();
      if (members.some((m) => m.peerUrls.includes(peerUrl))) return members;
      if (members.length >= MAX_MANAGED_MEMBERS) {
        logger.info({ members: members.length }, 'the etcd cluster has its members: this node runs none');
        return null;
      }
      // etcd allows one learner at a time: wait for the one there to be promoted.
      if (members.some((m) => m.learner)) {
        why = 'the learner of another join is not promoted yet';
      } else {
        return (await cluster.addLearner(peerUrl)).members;
      }
    } catch (e) {
      // etcd refuses a change while a member is new or unreachable (its strict reconfig check),
      // and the client pauses calls to a member after failures: both pass.
      why = (e as Error).message;
    }
    if (Date.now() > deadline) {
      throw new DotmeshError('UNAVAILABLE', `etcd did not take this node as a member within 120 s: ${why}`, {
        hint: 'check the etcd members (their logs in <state dir>/etcd.log); then start this node again (dm cluster start)',
      });
    }
    logger.info({ why }, 'etcd takes no new member yet: trying again');
    await sleep(1000);
  }
}

/** Promotes this member while it is a learner, and reports the membership once it votes. */
async function settle(o: {
  proc: EtcdProcess;
  nodeId: string;
  peerUrl: string;
  clientUrl: string;
  /** Other members' client URLs known from the config (a learner answers no cluster call). */
  others: readonly string[];
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  logger: Logger;
}): Promise<{ status: EtcdMemberStatus; endpoints: string[] }> {
  const deadline = Date.now() + READY_WAIT_MS;
  let endpoints = [...o.others, o.clientUrl];
  let lastError: unknown;
  for (;;) {
    const cluster = new EtcdMembers({ endpoints, ca: o.ca, cert: o.cert, key: o.key, requestTimeoutMs: 3000 });
    try {
      const members = await cluster.list();
      const me = members.find((m) => m.peerUrls.includes(o.peerUrl));
      if (!me) {
        throw new DotmeshError('CONFLICT', `the etcd cluster has no member at ${o.peerUrl}: this node's member was removed`, {
          hint: 'a node removed from the cluster (dm cluster remove-node) leaves it: dm cluster reset --destroy-data on this host',
        });
      }
      endpoints = [...new Set([...votingClientUrls(members), o.clientUrl])];
      if (me.learner) {
        // A learner answers no cluster call: ask the voting members, until etcd lets it vote.
        const leader = new EtcdMembers({
          endpoints: votingClientUrls(members),
          ca: o.ca,
          cert: o.cert,
          key: o.key,
          requestTimeoutMs: 3000,
        });
        try {
          await leader.promote(me.id);
          o.logger.info({ member: me.id }, 'this etcd learner caught up: promoted to a voting member');
        } finally {
          leader.close();
        }
        continue;
      }
      const voters = members.filter((m) => !m.learner).length;
      return {
        status: { name: o.nodeId, id: me.id, voting: true, members: members.length, voters },
        endpoints: [...new Set([o.clientUrl, ...votingClientUrls(members)])],
      };
    } catch (e) {
      if (e instanceof DotmeshError && e.code === 'CONFLICT') throw e;
      lastError = e;
    } finally {
      cluster.close();
    }
    if (Date.now() > deadline) {
      throw new DotmeshError(
        'UNAVAILABLE',
        `the managed etcd member did not become a voting member within 60 s: ${String((lastError as Error)?.message ?? lastError)}`,
        {
          hint: `see its log ${o.proc.pid === undefined ? '' : `(pid ${o.proc.pid}) `}in <state dir>/etcd.log`,
        },
      );
    }
    await sleep(500);
  }
}

/** Resolves once something listens on host:port; fails if etcd exits meanwhile or within 60 s. */
async function waitListening(host: string, port: number, proc: EtcdProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + READY_WAIT_MS;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (proc.crashes > 0 || Date.now() > deadline) {
      const tail = await readFile(logFile, 'utf8').then(
        (t) => t.slice(-1500),
        () => '',
      );
      throw new DotmeshError('UNAVAILABLE', `the managed etcd member does not listen on ${host}:${port}: ${tail}`, {
        hint: `see ${logFile}`,
      });
    }
    await sleep(200);
  }
}
