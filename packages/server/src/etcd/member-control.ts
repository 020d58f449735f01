import { setTimeout as sleep } from 'node:timers/promises';
import { DotmeshError } from '@dotmesh/core';
import type { EtcdMember, EtcdMembers } from '@dotmesh/store/etcd-members';

/** What the API does with the managed etcd's members (EtcdMembers, RemoveEtcdMember). */
export interface EtcdMemberControl {
  /** Every member, as etcd lists them (a majority of the members must answer). */
  list(): Promise<EtcdMember[]>;
  /** Removes the member named `node` (a node id); `removed` false: it had none. `members`: how many are left. */
  remove(node: string): Promise<{ removed: boolean; members: number }>;
}

/**
 * Member removal on a managed etcd: the member whose name is the node id goes (a node that is
 * gone for good too: a majority of the members must answer). The last voting member is never
 * removed (the cluster's store would go with it). `changed` runs after a removal (this
 * server's clients follow the members left).
 */
export function managedMemberControl(members: EtcdMembers, changed: () => unknown = () => {}): EtcdMemberControl {
  return {
    list: () => members.list(),
    async remove(node) {
      const all = await members.list();
      const it = all.find((m) => m.name === node);
      if (!it) return { removed: false, members: all.length };
      if (!it.learner && all.filter((m) => !m.learner).length <= 1) {
        throw new DotmeshError(
          'CONFLICT',
          `the etcd member of node ${node} is the cluster's last voting member: not removing it`,
          {
            hint: 'the cluster store lives on it; reset the whole cluster instead (dm cluster reset on every node)',
          },
        );
      }
      await removeWhenHealthy(members, it.id);
      await changed();
      return { removed: true, members: all.length - 1 };
    },
  };
}

/** How long a removal waits for etcd to find the cluster healthy enough for it. */
const REMOVE_WAIT_MS = 30_000;

/**
 * etcd refuses a member change while a member came back less than 5 s ago or cannot be
 * reached ("unhealthy cluster", its strict reconfiguration check), and after three refusals
 * the client pauses calls to that member for 5 s ("circuit breaker is open"): both pass, so
 * the removal is tried again for up to 30 s; any other error ends it at once.
 */
async function removeWhenHealthy(members: EtcdMembers, id: string): Promise<void> {
  const deadline = Date.now() + REMOVE_WAIT_MS;
  for (;;) {
    try {
      await members.remove(id);
      return;
    } catch (e) {
      if (!/etcdserver: unhealthy cluster|circuit breaker is open/.test((e as Error).message) || Date.now() > deadline) throw e;
    }
    await sleep(1000);
  }
}
