import { DotmeshError } from '@dotmesh/core';
import type { EtcdMembers } from '@dotmesh/store/etcd-members';

/** What the API does with the managed etcd's members (RemoveEtcdMember). */
export interface EtcdMemberControl {
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
      await members.remove(it.id);
      await changed();
      return { removed: true, members: all.length - 1 };
    },
  };
}
