import { cp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DotmeshError } from '@dotmesh/core';
import { type EtcdMemberState, EtcdMembers } from '@dotmesh/store/etcd-members';
import type { Logger } from '../log.ts';
import { EtcdProcess, stopLeftover } from './etcd-process.ts';

const PROBE_WAIT_MS = 30_000;

/** The TLS files of a managed member (its certificate names 127.0.0.1, as every managed member's does). */
export interface MemberTlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/**
 * What a member's data holds when no other member can be reached (a member without quorum
 * answers no client call, not even its status): the data dir is copied (to
 * `<probeDir>/dotmesh-etcd-probe-<name>`, the system's temporary directory by default), etcd runs on the copy as a new cluster of one (`--force-new-cluster`)
 * on loopback ports only, and its status is read: the committed raft index and the store's
 * revision of the member's data. The copy is then stopped and deleted; the member's own data
 * is only read. A server killed midway leaves the copy, which the next probe deletes first
 * (and stops its etcd, by its pid file).
 */
export async function probeMemberData(o: {
  readonly bin: string;
  readonly name: string;
  readonly dataDir: string;
  readonly tls: MemberTlsFiles;
  readonly logger: Logger;
  /** Where the copy goes (default: the system's temporary directory). */
  readonly probeDir?: string;
}): Promise<EtcdMemberState> {
  // Not beside the data: a pool volume leaves little room beyond the pool (etcd preallocates
  // its WAL files, 64 MiB each).
  const copy = join(o.probeDir ?? tmpdir(), `dotmesh-etcd-probe-${o.name}`);
  const spec = { bin: o.bin, dataDir: copy, logFile: `${copy}.log`, pidFile: `${copy}.pid` };
  const [clientPort, peerPort] = [await freeLoopbackPort(), await freeLoopbackPort()];
  const clientUrl = `https://127.0.0.1:${clientPort}`;
  const args = [
    `--name=${o.name}`,
    `--data-dir=${copy}`,
    '--force-new-cluster',
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=https://127.0.0.1:${peerPort}`,
    `--cert-file=${o.tls.cert}`,
    `--key-file=${o.tls.key}`,
    '--client-cert-auth',
    `--trusted-ca-file=${o.tls.ca}`,
    `--peer-cert-file=${o.tls.cert}`,
    `--peer-key-file=${o.tls.key}`,
    '--peer-client-cert-auth',
    `--peer-trusted-ca-file=${o.tls.ca}`,
    '--logger=zap',
    '--log-outputs=stderr',
  ];
  const proc = new EtcdProcess({ ...spec, args }, o.logger);
  // A probe a killed server left: its etcd stopped (by the pid file), its copy deleted.
  await stopLeftover(spec, o.logger);
  await rm(copy, { recursive: true, force: true });
  // The WAL's preallocated next segment (`*.tmp`) is not part of the member's data.
  await cp(o.dataDir, copy, { recursive: true, preserveTimestamps: true, filter: (src) => !src.endsWith('.tmp') });
  await proc.start();
  const [ca, cert, key] = await Promise.all([readFile(o.tls.ca), readFile(o.tls.cert), readFile(o.tls.key)]);
  const client = new EtcdMembers({ endpoints: [clientUrl], ca, cert, key, requestTimeoutMs: 3000 });
  try {
    const deadline = Date.now() + PROBE_WAIT_MS;
    for (;;) {
      try {
        const state = await client.status();
        o.logger.info({ ...state, dataDir: o.dataDir }, "read this node's etcd member data (on a copy, as a cluster of one)");
        return state;
      } catch (e) {
        if (proc.crashes > 0 || Date.now() > deadline) {
          throw new DotmeshError('UNAVAILABLE', `cannot read the etcd member data in ${o.dataDir}: ${(e as Error).message}`, {
            hint: `see etcd's log ${spec.logFile}`,
          });
        }
      }
      await sleep(300);
    }
  } finally {
    client.close();
    await proc.stop();
    await rm(copy, { recursive: true, force: true });
  }
}

/** A TCP port free on 127.0.0.1 now (the kernel's choice). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
