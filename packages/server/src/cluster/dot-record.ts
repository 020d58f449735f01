import { DotmeshError } from '@dotmesh/core';
import type { Store } from '@dotmesh/store';
import { absent } from '../dots/mutation/store-writes.ts';
import { KEYS, parseValue } from './store-keys.ts';
import type { ClusterView } from './view.ts';

/** Compare-and-swap rounds before a contended record gives up. */
const CAS_ATTEMPTS = 20;

/**
 * Rewrites a per-dot settings record (`key`, of dot `dotId`: its durability, what is pinned) by
 * compare-and-swap: `next` gets the stored value and returns the new one (undefined: the key
 * goes). Fails with DOT_NOT_FOUND when the dot was deleted (its tombstone fails the write, so a
 * deleted dot keeps no record); resolves once this node's view has seen the write.
 */
export async function updateDotRecord<T>(
  store: Store,
  view: Pick<ClusterView, 'caughtUp' | 'isDeleted'>,
  o: { readonly key: string; readonly dotId: string; readonly what: string },
  next: (stored: T | undefined) => T | undefined,
): Promise<void> {
  const { key, dotId } = o;
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const kv = await store.get(key);
    const value = next(parseValue<T>(kv?.value));
    if (!kv && value === undefined) return;
    const fence = kv ? { key, target: 'modRevision' as const, op: '==' as const, value: kv.modRevision } : absent(key);
    const op =
      value === undefined ? { type: 'delete' as const, key } : { type: 'put' as const, key, value: JSON.stringify(value) };
    const result = await store.txn({ compare: [fence, absent(KEYS.deleted(dotId))], success: [op] });
    if (result.succeeded) {
      await view.caughtUp(result.revision);
      return;
    }
    if (view.isDeleted(dotId)) {
      throw new DotmeshError('DOT_NOT_FOUND', `dot ${dotId} was deleted: it has no ${o.what} to set`, { data: { dotId } });
    }
  }
  throw new DotmeshError('UNAVAILABLE', `the ${o.what} of dot ${dotId} kept changing: gave up after ${CAS_ATTEMPTS} attempts`, {
    hint: 'run it again',
  });
}
