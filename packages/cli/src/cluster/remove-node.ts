import type { RemoveNodeResult } from '@dotmesh/rpc/remove-node';

/**
 * `dm cluster remove-node <node> [--to <node>] [--force]`, run against any node of the cluster
 * (the current remote): `removeNode` of `@dotmesh/rpc/remove-node` (the Kubernetes operator
 * uses it too) takes a node's branches off it and removes its managed etcd member. The node
 * itself is then stopped or reset on its host (`dm cluster stop` / `reset`); its own keys
 * vanish with its lease.
 */
export { type RemoveNodeResult, removeNode } from '@dotmesh/rpc/remove-node';

export function renderRemoveNode(r: RemoveNodeResult): string[] {
  return [
    r.moved.length === 0
      ? `Node ${r.node} masters no branch.`
      : `${r.forced ? 'Gave' : 'Moved'} ${r.moved.length} branch(es) of node ${r.node} to ${r.to}: ${r.moved.join(', ')}.`,
    r.live
      ? `Node ${r.node} can leave now: on its host, 'dm cluster stop' (or 'dm cluster reset --destroy-data' to free the host).`
      : `Node ${r.node} is gone; its own keys went with its lease.`,
    ...(r.etcdMember === 'not-managed' || !r.etcdMember.removed
      ? []
      : [`Removed its etcd member: the cluster's etcd has ${r.etcdMember.members} member(s) left.`]),
  ];
}
