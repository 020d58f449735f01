import type { DotmeshClient } from '@dotmesh/rpc';
import { everySnapshot } from './group-records.ts';
import { isCode } from './grpc-errors.ts';
import type { VolumeRef } from './ids.ts';

/**
 * Steps the Controller and GroupController services share: finding a volume's branch, a commit
 * a retry finds made, a retried step taken as done, and the collection of a dot the driver made.
 */

/** The branch a volume, snapshot or group id names, checked against the cluster (its dot id and namespace too). */
export async function branchOf(client: DotmeshClient, ref: Pick<VolumeRef, 'namespace' | 'dotId' | 'branchId'>) {
  try {
    const b = await client.call('BranchById', ref.branchId);
    if (b.DotId !== ref.dotId || b.Namespace !== ref.namespace) return undefined;
    return b;
  } catch (e) {
    if (isCode(e, 'DOT_NOT_FOUND')) return undefined;
    throw e;
  }
}

/** Commits on a branch with a fixed commit id: a retry finds the commit made (COMMIT_EXISTS). */
export function commitOnce(
  client: DotmeshClient,
  at: { readonly Namespace: string; readonly Name: string; readonly Branch: string },
  message: string,
  metadata: Record<string, string>,
): Promise<void> {
  return idempotent(
    () =>
      client.call('Commit', { Namespace: at.Namespace, Name: at.Name, Branch: at.Branch, Message: message, Metadata: metadata }),
    'COMMIT_EXISTS',
  );
}

/** Runs `fn`, taking the dotmesh error codes in `done` as "already so" (a retried step). */
export async function idempotent(fn: () => Promise<unknown>, ...done: string[]): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (!isCode(e, ...done)) throw e;
  }
}

/**
 * Deletes a dot the driver made once no volume (branch besides master) and no snapshot of it (a
 * group's member included) is left. Retired branches do not count: they are kept only for what
 * a volume or a snapshot needs (and one mastered by another node than the deleting one's is not
 * collected with it), so the dot's delete, which destroys every branch on every node, takes them.
 */
export async function deleteDriverDotIfUnused(
  client: DotmeshClient,
  b: { readonly Namespace: string; readonly Name: string },
  dotId: string,
): Promise<void> {
  if (!/^csi-[0-9a-f]{32}$/.test(b.Name)) return;
  const left = await client.call('Branches', { Namespace: b.Namespace, Name: b.Name });
  if (left.length > 0 || (await everySnapshot(client)).some((s) => s.ref.dotId === dotId)) return;
  await idempotent(() => client.call('Delete', { Namespace: b.Namespace, Name: b.Name }), 'DOT_NOT_FOUND');
}
