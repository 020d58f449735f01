import { setTimeout as sleep } from 'node:timers/promises';
import { DotmeshError } from '@dotmesh/core';
import { DEFAULT_ETCD_MOVE_WAIT_SECONDS } from '@dotmesh/rpc/server-defaults';
import { EtcdMembers } from '@dotmesh/store/etcd-members';
import type { Logger } from '../log.ts';

/** How long a moved member waits for the cluster to take its new peer URL, unless told (`waitMs`). */
const MOVE_WAIT_MS = DEFAULT_ETCD_MOVE_WAIT_SECONDS * 1000;

/**
 * A managed member whose host has a new address (its pool moved: an adopted pool volume, a disk
 * moved by hand) must be known at its new peer URL before it starts on its data, or the other
 * members keep dialling the old one. Through the other members (`endpoints`, never its own),
 * once `beforeChange` resolved (the node's earlier holder is gone: its lease expired), the
 * member named `nodeId` gets `peerUrl` (etcd's `member update`, a change a majority of the
 * members must accept, so the quorum holds throughout: the member is down while it moves).
 * Tried again while etcd does not answer or refuses the change, for up to `waitMs` (the server
 * config's `etcdMoveWaitSeconds`, default 120 s; counted again from the end of `beforeChange`,
 * whose wait for the earlier holder is not the cluster's); a cluster
 * without that member refuses (CONFLICT: the node was removed). When no member answered at
 * all in that time (every member moved at once), the error's data says `stranded: true`.
 *
 * `alone`: the config names no other member (a cluster of one node whose pool moved). The
 * member then moves through itself: `endpoints` is its own client URL, it already runs on its
 * data at the new address (a member of one needs no peer to serve), and its peer URL is
 * changed only if it is the cluster's only member (else CONFLICT: the other members must be
 * asked, and the config does not name them).
 */
export async function movePeerUrl(o: {
  readonly nodeId: string;
  readonly peerUrl: string;
  readonly endpoints: readonly string[];
  readonly alone?: boolean;
  readonly tls: { readonly ca: Buffer; readonly cert: Buffer; readonly key: Buffer };
  readonly beforeChange: (endpoints: readonly string[]) => Promise<void>;
  readonly logger: Logger;
  /** How long the cluster is given to take the change (default 120 s). */
  readonly waitMs?: number;
}): Promise<void> {
  if (o.endpoints.length === 0) {
    throw new DotmeshError(
      'UNAVAILABLE',
      `this node's etcd member must move to ${o.peerUrl}, and the config names no other member to ask`,
      {
        hint: 'a member moves through the others: a cluster whose every member moved at once needs its etcd restored from a backup (dm cluster restore-etcd)',
      },
    );
  }
  const members = new EtcdMembers({ endpoints: o.endpoints, ...o.tls, requestTimeoutMs: 5000 });
  const waitMs = o.waitMs ?? MOVE_WAIT_MS;
  // The wait for the pool's earlier holder (beforeChange: at most its lease's TTL) is not the
  // cluster's: the deadline starts again once it is over.
  let deadline = Date.now() + waitMs;
  let why = '';
  // Whether any member answered: none in the whole wait is a member stranded (every member moved).
  let answered = false;
  let claimed = false;
  try {
    for (;;) {
      try {
        const listed = await members.list();
        answered = true;
        if (!claimed) {
          await o.beforeChange(o.endpoints);
          claimed = true;
          deadline = Date.now() + waitMs;
        }
        const me = listed.find((m) => m.name === o.nodeId);
        if (!me) {
          throw new DotmeshError('CONFLICT', `the etcd cluster has no member named ${o.nodeId}: this node's member was removed`, {
            hint: 'a node removed from the cluster (dm cluster remove-node) leaves it: dm cluster reset --destroy-data on this host',
          });
        }
        if (me.peerUrls.length === 1 && me.peerUrls[0] === o.peerUrl) return;
        const others = listed.filter((m) => m !== me).flatMap((m) => m.peerUrls);
        if (o.alone && others.length > 0) {
          throw new DotmeshError(
            'CONFLICT',
            `this node's etcd member must move to ${o.peerUrl}, and the cluster has other members (${others.join(', ')}) that this node's config does not name`,
            {
              hint: 'a member moves through the others: start this node with a config that names their client URLs (etcdEndpoints)',
            },
          );
        }
        await members.update(me.id, [o.peerUrl]);
        o.logger.info(
          { member: me.id, from: me.peerUrls, to: o.peerUrl },
          "this node's address changed: its etcd member's peer URL was updated",
        );
      } catch (e) {
        if (e instanceof DotmeshError && e.code === 'CONFLICT') throw e;
        why = (e as Error).message;
      }
      if (Date.now() > deadline) {
        throw new DotmeshError(
          'UNAVAILABLE',
          `etcd did not take this member's new peer URL ${o.peerUrl} within ${waitMs / 1000} s: ${why}`,
          {
            hint: answered
              ? 'a majority of the etcd members must run; then start this node again (dm cluster start)'
              : 'no other member answered: if every member moved at once, the cluster needs an etcd recovery (docs/kubernetes.md, "Replacing every node at once") or a restore from a backup (dm cluster restore-etcd)',
            data: { stranded: !answered },
          },
        );
      }
      o.logger.info({ why }, "etcd takes no change of this member's peer URL yet: trying again");
      await sleep(1000);
    }
  } finally {
    members.close();
  }
}
