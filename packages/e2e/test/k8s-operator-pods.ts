import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DocInstall, Kubectl, TestCluster } from '@dotmesh/testkit';

/**
 * What the operator tests read of an installed Dotmesh through the API server: the server pods,
 * the operator pods and which one leads, their metrics and logs.
 */
/** The docs the operator tests install Dotmesh from, and the build whose images they run. */
export const DOC = join(import.meta.dirname, '../../../docs/kubernetes.md');
export const DIST = join(import.meta.dirname, '../../../dist');
export const NS = 'dotmesh';
export const ROLE = 'dotmesh.io/role=dotmesh-server';

export interface PodJson {
  metadata: {
    name: string;
    uid: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
    ownerReferences?: { kind: string; name: string; controller?: boolean }[];
  };
  spec: {
    nodeName?: string;
    hostNetwork?: boolean;
    hostPID?: boolean;
    containers: { name?: string; image: string; securityContext?: { privileged?: boolean }; args?: string[] }[];
    volumes?: { name: string; hostPath?: { path: string }; secret?: { secretName: string } }[];
  };
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
}

export async function getJson<T>(kubectl: Kubectl, args: readonly string[]): Promise<T> {
  return JSON.parse((await kubectl([...args, '-o', 'json'])).stdout) as T;
}

/** The live (not being deleted) server pods, by name. */
export async function serverPods(kubectl: Kubectl): Promise<Map<string, PodJson>> {
  const list = await getJson<{ items: PodJson[] }>(kubectl, ['get', 'pods', '-n', NS, '-l', ROLE]);
  return new Map(list.items.filter((p) => !p.metadata.deletionTimestamp).map((p) => [p.metadata.name, p]));
}

/** The operator pods that run and are Ready. */
export async function operatorPods(kubectl: Kubectl): Promise<PodJson[]> {
  const list = await getJson<{ items: PodJson[] }>(kubectl, ['get', 'pods', '-n', NS, '-l', 'app=dotmesh-operator']);
  return list.items.filter(
    (p) => !p.metadata.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
  );
}

/** The operator pod holding the leader Lease (its holder identity is the pod's name). */
export async function leaderPod(kubectl: Kubectl): Promise<PodJson | undefined> {
  const lease = await getJson<{ spec?: { holderIdentity?: string } }>(kubectl, [
    'get',
    'lease',
    '-n',
    NS,
    'dotmesh-operator',
  ]).catch(() => undefined);
  return (await operatorPods(kubectl)).find((p) => p.metadata.name === lease?.spec?.holderIdentity);
}

/** A metric of an operator pod, read from its /metrics (curl inside the pod). */
export async function metric(kubectl: Kubectl, pod: string, name: string): Promise<number> {
  const { stdout } = await kubectl(['exec', '-n', NS, pod, '--', 'curl', '-sf', 'http://127.0.0.1:32608/metrics']);
  const line = stdout.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${pod} has no metric ${name}`);
  return Number(line.split(' ')[1]);
}

/** The operator's log lines (JSON) of pod `name`. */
export async function operatorLog(kubectl: Kubectl, name: string): Promise<Record<string, unknown>[]> {
  const { stdout } = await kubectl(['logs', '-n', NS, name]);
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

export const uids = (pods: Map<string, PodJson>) => new Map([...pods].map(([n, p]) => [n, p.metadata.uid]));

/**
 * An `onBeforeRemoval` for installDotmeshFromDoc: when `failed()`, prints what the operator saw
 * (pods, events, the leading operator's log, each server's log tail) for a failing run's reader,
 * and the logs `moreLogs` names (`kubectl logs -n dotmesh` arguments, e.g. other Deployments').
 */
export function diagnosticsOnFailure(
  cluster: TestCluster,
  failed: () => boolean,
  moreLogs: readonly (readonly string[])[] = [],
): (install: DocInstall) => Promise<void> {
  const { kubectl } = cluster;
  return async (install) => {
    if (!failed()) return;
    const show = (args: string[]) =>
      kubectl(args).then(
        (r) => r.stdout,
        (e: Error) => e.message,
      );
    const op = await leaderPod(kubectl).catch(() => undefined);
    console.error(
      [
        await show(['get', 'pods', '-A', '-o', 'wide']),
        await show(['get', 'events', '-n', NS]),
        op ? await show(['logs', '-n', NS, op.metadata.name]) : 'no operator pod',
        ...(await Promise.all(moreLogs.map((args) => show(['logs', '-n', NS, '--tail=100', ...args])))),
        ...(await Promise.all(
          cluster.nodes.map((n) =>
            readFile(join(install.pools, n.name, 'server', 'dotmesh-server.log'), 'utf8').then(
              (l) => `--- server log of ${n.name} (tail) ---\n${l.slice(-3000)}`,
              () => `no server log on ${n.name}`,
            ),
          ),
        )),
      ].join('\n'),
    );
  };
}
