import { DotmeshError, formatDotName } from '@dotmesh/core';
import type { CallParamsOf, MethodName, ResultOf } from './methods.ts';
import type { DotmeshVolume } from './types.ts';

/**
 * Taking a node out of the cluster through the API of another node (the caller's `call`): what
 * `dm cluster remove-node` and the Kubernetes operator both do.
 * - A live node: every branch it masters is handed to `to` (default: the answering node) by
 *   MoveBranch — committed data and uncommitted changes move with it. A branch that cannot move
 *   (in use there, …) is named in the error; the ones moved before stay moved.
 * - A node that is gone (no live lease): its branches cannot be handed over. Without `force`
 *   the removal is refused (IN_USE), naming them; with it, their master keys go to `to`
 *   (ForceBranchMasterById), which continues from the commits it holds.
 * Then its managed etcd member, if it runs one, is removed from the cluster's etcd (a node that
 * is gone for good too). An etcd Dotmesh does not run is left alone. Running it again on a node
 * already removed changes nothing (no branch to move, no member to remove).
 */
export interface NodeRemovalCaller {
  call<M extends MethodName>(method: M, params: CallParamsOf<M>): Promise<ResultOf<M>>;
}

export interface RemoveNodeResult {
  readonly node: string;
  readonly live: boolean;
  readonly to: string;
  /** `ns/name[@branch]` of every branch given to `to`. */
  readonly moved: string[];
  readonly forced: boolean;
  /** Its managed etcd member: removed (and how many are left), none, or not Dotmesh's etcd. */
  readonly etcdMember: { readonly removed: boolean; readonly members: number } | 'not-managed';
}

const NODE_RE = /^[A-Za-z0-9_-]{1,64}$/;

function branchName(v: DotmeshVolume): string {
  const dot = formatDotName({ namespace: v.Name.Namespace, name: v.Name.Name });
  return v.Branch === '' ? dot : `${dot}@${v.Branch}`;
}

export async function removeNode(
  api: NodeRemovalCaller,
  o: { readonly node: string; readonly to: string | undefined; readonly force: boolean },
): Promise<RemoveNodeResult> {
  if (!NODE_RE.test(o.node))
    throw new DotmeshError('INVALID_ARGUMENT', `${JSON.stringify(o.node.slice(0, 80))} is not a node id`);
  const all = await api.call('AllDotsAndBranches', {});
  const here = (await api.call('PoolInfo', {})).NodeId;
  const live = all.Servers.some((s) => s.Id === o.node);
  const to = o.to ?? here;
  if (to === o.node) {
    throw new DotmeshError('INVALID_ARGUMENT', `cannot give the branches of ${o.node} to itself`, {
      hint: 'give --to <another live node>, or run the command against another node (dm remote switch)',
    });
  }
  if (!all.Servers.some((s) => s.Id === to)) {
    throw new DotmeshError('INVALID_ARGUMENT', `${to} is not a live node of this cluster`, {
      hint: `the live nodes: ${all.Servers.map((s) => s.Id).join(', ')}`,
    });
  }
  const mastered = all.Dots.flatMap((d) => [d.MasterBranch, ...(d.OtherBranches ?? [])]).filter((v) => v.Master === o.node);
  if (!live && !o.force && mastered.length > 0) {
    throw new DotmeshError(
      'IN_USE',
      `node ${o.node} is not live and masters ${mastered.length} branch(es): ${mastered.map(branchName).join(', ')}`,
      {
        hint: `they cannot be handed over from a node that is gone: start it again and retry, or give them to ${to} with --force (the commits only ${o.node} held are then missing)`,
        data: { branches: mastered.map((v) => v.Id) },
      },
    );
  }
  const moved: string[] = [];
  for (const v of mastered) {
    try {
      if (live) await api.call('MoveBranch', { BranchId: v.Id, Node: to });
      else await api.call('ForceBranchMasterById', { FilesystemId: v.Id, Master: to });
    } catch (e) {
      const left = mastered.filter((m) => !moved.includes(branchName(m))).map(branchName);
      throw new DotmeshError(
        e instanceof DotmeshError ? e.code : 'INTERNAL',
        `cannot move ${branchName(v)} off node ${o.node}: ${(e as Error).message}`,
        {
          hint: `${moved.length > 0 ? `moved already: ${moved.join(', ')}; ` : ''}still on ${o.node}: ${left.join(', ')}. ${e instanceof DotmeshError && e.hint ? e.hint : 'fix that and run the command again'}`,
          data: { moved, left },
        },
      );
    }
    moved.push(branchName(v));
  }
  const etcdMember = await removeEtcdMember(api, o.node);
  return { node: o.node, live, to, moved, forced: !live && mastered.length > 0, etcdMember };
}

/** RemoveEtcdMember: its member goes once its branches moved (UNSUPPORTED: the cluster's etcd is not Dotmesh's). */
async function removeEtcdMember(api: NodeRemovalCaller, node: string): Promise<RemoveNodeResult['etcdMember']> {
  try {
    const r = await api.call('RemoveEtcdMember', { Node: node });
    return { removed: r.Removed, members: r.Members };
  } catch (e) {
    if (e instanceof DotmeshError && e.code === 'UNSUPPORTED') return 'not-managed';
    throw e;
  }
}
