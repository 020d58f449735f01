import type { Compare, KeyValue } from '../store.ts';
import { compareKeys } from './keys.ts';

/**
 * Whether one txn compare holds for `kv` (undefined = the key is missing). A missing key
 * has version, createRevision and modRevision 0; a value compare on it is false whatever
 * the op, as in etcd. Pure; the caller has validated the compare (checkTxn).
 */
export function compareHolds(c: Compare, kv: KeyValue | undefined): boolean {
  let order: number;
  if (c.target === 'value') {
    if (kv === undefined) return false;
    order = compareKeys(kv.value, c.value as string);
  } else {
    const actual = kv === undefined ? 0 : kv[c.target];
    order = actual - (c.value as number);
  }
  switch (c.op) {
    case '==':
      return order === 0;
    case '!=':
      return order !== 0;
    case '<':
      return order < 0;
    case '>':
      return order > 0;
  }
}
