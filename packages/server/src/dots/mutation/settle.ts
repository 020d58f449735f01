import type { Store, TxnOp } from '@dotmesh/store';

/**
 * Whether a transaction whose outcome is unknown (its write timed out: the store may have
 * applied it) was applied, decided from what the store holds now. A transaction writes all its
 * puts at one revision, so it was applied when every key it put holds the value it put, all at
 * one revision; a transaction without puts, when every key it deleted is gone. Keys under a
 * lease vanish when the lease ends (a long outage), so they count only when the transaction put
 * no other key: a commit's (own keys alone) whose lease ended meanwhile counts as not applied,
 * which the store then agrees with. Returns
 * undefined while the store does not answer. Sound for the mutation path's transactions: each
 * puts at least one value no other write makes (a commit's id, a new branch's records, a state
 * naming its head), and the branches they fence are locked by the mutation until it is settled.
 */
export async function wasApplied(store: Pick<Store, 'get'>, ops: readonly TxnOp[]): Promise<boolean | undefined> {
  try {
    const all = ops.filter((op) => op.type === 'put');
    const lasting = all.filter((op) => op.lease === undefined);
    const puts = lasting.length > 0 ? lasting : all;
    if (puts.length > 0) {
      const found = await Promise.all(puts.map((op) => store.get(op.key)));
      const revisions = new Set(found.map((kv) => kv?.modRevision));
      return found.every((kv, i) => kv !== undefined && kv.value === puts[i]!.value) && revisions.size === 1;
    }
    const deleted = ops.filter((op) => op.type === 'delete');
    const left = await Promise.all(deleted.map((op) => store.get(op.key)));
    return left.every((kv) => kv === undefined);
  } catch {
    return undefined;
  }
}
