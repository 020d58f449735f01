import type { IKeyValue } from 'etcd3';
import type { KeyValue } from '../store.ts';

/**
 * Translation between the Store's string keys and etcd's byte keys under a store prefix.
 * Every key of an EtcdStore lives at `prefix + key` (UTF-8); keys read back are stripped of
 * the prefix. Pure functions.
 */
export class KeyCodec {
  readonly #prefix: Buffer;

  constructor(prefix: string) {
    this.#prefix = Buffer.from(prefix, 'utf8');
  }

  encode(key: string): Buffer {
    return Buffer.concat([this.#prefix, Buffer.from(key, 'utf8')]);
  }

  decode(raw: Buffer): string {
    return raw.subarray(this.#prefix.length).toString('utf8');
  }

  /** etcd's [key, range_end) for every key starting with `prefix` (within the store prefix). */
  range(prefix: string): { key: Buffer; range_end: Buffer } {
    const start = this.encode(prefix);
    // An empty start with range_end "\0" means every key (etcd's convention).
    if (start.length === 0) return { key: Buffer.from([0]), range_end: Buffer.from([0]) };
    return { key: start, range_end: prefixEnd(start) };
  }

  keyValue(kv: IKeyValue): KeyValue {
    const lease = leaseToStore(kv.lease);
    return {
      key: this.decode(kv.key),
      value: kv.value.toString('utf8'),
      createRevision: Number(kv.create_revision),
      modRevision: Number(kv.mod_revision),
      version: Number(kv.version),
      ...(lease === undefined ? {} : { lease }),
    };
  }
}

/** The smallest key greater than every key starting with `start`; "\0" (= no end) for 0xff… */
function prefixEnd(start: Buffer): Buffer {
  const end = Buffer.from(start);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

const MAX_LEASE_ID = (1n << 63n) - 1n;

/**
 * Lease ids: etcd's int64 (decimal strings on the wire) shown as lowercase hex, as etcdctl
 * prints them. Returns undefined for "no lease" (0).
 */
export function leaseToStore(id: string | undefined): string | undefined {
  if (id === undefined || id === '0' || id === '') return undefined;
  return BigInt(id).toString(16);
}

/**
 * The etcd (decimal) form of a Store lease id, or undefined when `id` cannot name any etcd
 * lease (not hex, zero, or beyond int64): such a lease is simply "not found".
 */
export function leaseToEtcd(id: string): string | undefined {
  if (!/^[0-9a-fA-F]{1,16}$/.test(id)) return undefined;
  const n = BigInt(`0x${id}`);
  return n > 0n && n <= MAX_LEASE_ID ? n.toString() : undefined;
}
