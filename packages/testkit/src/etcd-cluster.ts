import { request } from 'node:http';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.ts';
import { freePorts } from './ports.ts';
import { spawnTracked, type TrackedProcess } from './process.ts';
import { makeTempDir } from './tmp.ts';

/** One member of a test etcd cluster. */
export interface EtcdClusterMember {
  readonly name: string;
  /** Its client URL (plain http on 127.0.0.1). */
  readonly endpoint: string;
  readonly process: TrackedProcess;
  /** SIGSTOP: it keeps its connections but answers nothing (a hung or cut-off host). */
  freeze(): void;
  /** SIGCONT after `freeze`. */
  thaw(): void;
  /** SIGKILL; resolves once it exited. */
  kill(): Promise<void>;
}

/**
 * A real etcd cluster of `members` members (Debian's etcd), on loopback ports of its own, plain
 * http, data under the test root; `cleanup` thaws and stops every member and removes its data.
 * Resolves at once: the members elect a leader within a few seconds (a store opened on them
 * waits for that).
 */
export async function startEtcdCluster(o: { cleanup: Cleanup; members?: number }): Promise<EtcdClusterMember[]> {
  const count = o.members ?? 3;
  const dir = await makeTempDir('etcd-cluster', o.cleanup);
  const ports = await freePorts(2 * count);
  const names = Array.from({ length: count }, (_, i) => `m${i}`);
  const peer = (i: number) => `http://127.0.0.1:${ports[count + i]}`;
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  return names.map((name, i) => {
    const endpoint = `http://127.0.0.1:${ports[i]}`;
    const process = spawnTracked(
      'etcd',
      [
        `--name=${name}`,
        `--data-dir=${join(dir, name)}`,
        `--listen-client-urls=${endpoint}`,
        `--advertise-client-urls=${endpoint}`,
        `--listen-peer-urls=${peer(i)}`,
        `--initial-advertise-peer-urls=${peer(i)}`,
        `--initial-cluster=${initial}`,
        '--initial-cluster-state=new',
        '--logger=zap',
        '--log-outputs=stderr',
      ],
      { cleanup: o.cleanup, env: { PATH: globalThis.process.env.PATH ?? '/usr/bin:/bin' } },
    );
    const signal = (sig: NodeJS.Signals) => {
      try {
        globalThis.process.kill(process.pid, sig);
      } catch {
        // already gone
      }
    };
    // A frozen member cannot act on SIGTERM: thawing it is added after its stop, so it runs before.
    o.cleanup.add(() => signal('SIGCONT'), `thaw etcd member ${name}`);
    return {
      name,
      endpoint,
      process,
      freeze: () => signal('SIGSTOP'),
      thaw: () => signal('SIGCONT'),
      kill: async () => {
        signal('SIGKILL');
        await process.exited;
      },
    };
  });
}

/** A member of `members` that answers and is not the leader, by etcd's own status of each. */
export async function etcdFollower(members: readonly EtcdClusterMember[]): Promise<EtcdClusterMember> {
  for (const m of members) {
    if (m.process.child.exitCode !== null || m.process.child.signalCode !== null) continue;
    const status = await memberStatus(m.endpoint).catch(() => undefined);
    if (status && status.leader !== status.header.member_id) return m;
  }
  throw new Error('no etcd member answers as a follower');
}

/** etcd's Maintenance.Status through its JSON gateway (`POST /v3/maintenance/status`). */
function memberStatus(endpoint: string): Promise<{ header: { member_id: string }; leader: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${endpoint}/v3/maintenance/status`, { method: 'POST', timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`${endpoint} did not answer its status`)));
    req.end('{}');
  });
}
