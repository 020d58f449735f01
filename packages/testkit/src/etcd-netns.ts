import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.ts';
import { routeCheck, type TestHost } from './hosts.ts';
import { freePorts } from './ports.ts';
import { type TrackedProcess, waitFor } from './process.ts';
import { makeTempDir } from './tmp.ts';

/**
 * A real etcd of one or more members inside a test host's network namespace, reachable from
 * every other host of the same `createHosts` network (never from the root namespace). It runs
 * on etcd's defaults (request size limits included): servers must work on them. Members
 * listen on the host's address, each on its own free client and peer ports, with their data
 * directories under the test root. Everything is removed by `cleanup`.
 */
export interface NetnsEtcd {
  readonly host: TestHost;
  /** Client URLs of every member (`http://<host address>:<port>`). */
  readonly endpoints: string[];
  /** Each member's data directory (WAL, snapshots, database). */
  readonly dataDirs: string[];
  /**
   * Every key starting with `prefix`: its value, its lease (0: none) and the store revisions that
   * created and last changed it, read with etcdctl inside the host.
   */
  keys(
    prefix?: string,
  ): Promise<Array<{ key: string; value: string; lease: number; createRevision: number; modRevision: number }>>;
  /** SIGKILLs every member; resolves once they are gone. */
  kill9(): Promise<void>;
  /** SIGKILLs member `index` only; resolves once the others are healthy (they keep quorum when there are three). */
  kill9Member(index: number): Promise<void>;
  /** Starts member `index` again on its data directory; resolves once it reports healthy. */
  startMember(index: number): Promise<void>;
  /** Starts every member again on its data directory; resolves once the cluster is healthy. */
  start(): Promise<void>;
  /** etcd lost entirely: kills every member, deletes its data and starts a new, empty cluster on the same ports. */
  wipe(): Promise<void>;
  output(): string;
}

export interface StartEtcdInOptions {
  readonly cleanup: Cleanup;
  readonly host: TestHost;
  /** Members (default 1). */
  readonly members?: number;
}

export async function startEtcdIn(o: StartEtcdInOptions): Promise<NetnsEtcd> {
  const { cleanup, host } = o;
  const count = o.members ?? 1;
  const dir = await makeTempDir('etcd-', cleanup);
  const ports = await freePorts(2 * count);
  const members = Array.from({ length: count }, (_, i) => ({
    name: `m${i}`,
    client: `http://${host.address}:${ports[2 * i]}`,
    peer: `http://${host.address}:${ports[2 * i + 1]}`,
    dataDir: join(dir, `m${i}`),
  }));
  const initialCluster = members.map((m) => `${m.name}=${m.peer}`).join(',');
  let procs: TrackedProcess[] = [];
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  let token = '';
  const spawnMember = (m: (typeof members)[number]) =>
    host.spawn(
      'etcd',
      [
        `--name=${m.name}`,
        `--data-dir=${m.dataDir}`,
        `--listen-client-urls=${m.client}`,
        `--advertise-client-urls=${m.client}`,
        `--listen-peer-urls=${m.peer}`,
        `--initial-advertise-peer-urls=${m.peer}`,
        `--initial-cluster=${initialCluster}`,
        '--initial-cluster-state=new',
        `--initial-cluster-token=${token}`,
        '--logger=zap',
        '--log-outputs=stderr',
      ],
      { cleanup, env },
    );
  const start = async () => {
    // A new token per start of a new cluster: members of a wiped cluster never meet old data.
    token = `dmtest-${randomBytes(4).toString('hex')}`;
    procs = members.map(spawnMember);
    await waitFor(
      async () => {
        for (const p of procs) {
          if (await Promise.race([p.exited.then(() => true), Promise.resolve(false)])) {
            throw new Error(`etcd exited during start:\n${p.output().slice(-3000)}`);
          }
        }
        const healthy = await Promise.all(members.map((m) => health(host, m.client)));
        return healthy.every(Boolean);
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `etcd (${count} member(s)) in ${host.name} to be healthy` },
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n${procs.map((p) => p.output().slice(-2000)).join('\n')}`, { cause: e });
    });
  };
  const kill9 = async () => {
    for (const p of procs) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await Promise.all(procs.map((p) => p.exited));
  };
  await start();
  return {
    host,
    endpoints: members.map((m) => m.client),
    dataDirs: members.map((m) => m.dataDir),
    async keys(prefix = '') {
      await routeCheck(host, host.address);
      const { stdout } = await host.exec(
        'etcdctl',
        [`--endpoints=${members[0]!.client}`, 'get', prefix, '--prefix', '-w', 'json'],
        { env: { ...env, ETCDCTL_API: '3' } },
      );
      const reply = JSON.parse(stdout) as {
        kvs?: Array<{ key: string; value?: string; lease?: number; create_revision?: number; mod_revision?: number }>;
      };
      return (reply.kvs ?? []).map((kv) => ({
        key: Buffer.from(kv.key, 'base64').toString('utf8'),
        value: Buffer.from(kv.value ?? '', 'base64').toString('utf8'),
        lease: kv.lease ?? 0,
        createRevision: kv.create_revision ?? 0,
        modRevision: kv.mod_revision ?? 0,
      }));
    },
    kill9,
    start,
    async kill9Member(index) {
      const p = procs[index];
      if (!p) throw new Error(`no etcd member ${index}`);
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await p.exited;
      // The others elect a leader among themselves (etcd's /health is false without one).
      const others = members.filter((_, i) => i !== index);
      await waitFor(async () => (await Promise.all(others.map((m) => health(host, m.client)))).every(Boolean), {
        timeoutMs: 30_000,
        intervalMs: 200,
        what: `the etcd members but ${members[index]!.name} to be healthy`,
      });
    },
    async startMember(index) {
      const m = members[index];
      if (!m) throw new Error(`no etcd member ${index}`);
      procs[index] = spawnMember(m);
      await waitFor(() => health(host, m.client), {
        timeoutMs: 30_000,
        intervalMs: 200,
        what: `etcd member ${m.name} to be healthy`,
      });
    },
    async wipe() {
      await kill9();
      await Promise.all(members.map((m) => rm(m.dataDir, { recursive: true, force: true })));
      await start();
    },
    output: () => procs.map((p) => p.output()).join('\n'),
  };
}

/** GET /health from inside the host: true once the member reports itself healthy. */
async function health(host: TestHost, url: string): Promise<boolean> {
  await routeCheck(host, new URL(url).hostname);
  try {
    const { stdout } = await host.exec('curl', ['-sS', '--max-time', '2', `${url}/health`], { timeoutMs: 5000 });
    return /"health"\s*:\s*"true"/.test(stdout);
  } catch {
    return false;
  }
}
