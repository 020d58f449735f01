import { MemoryStore, type Store } from '@dotmesh/store';
import { EtcdStore } from '@dotmesh/store/etcd';
import { type Cleanup, type EtcdProcess, skipUnless, startEtcd } from '@dotmesh/testkit';

/** A kind of store for in-process servers: `open` gives a fresh, empty one. */
export interface StoreKind {
  readonly skip: string | false;
  readonly open: () => Promise<Store>;
}

/**
 * The memory store, and etcd: one real etcd (started by the first `open`, stopped by
 * `cleanup`), a new key prefix (`<prefix>-<n>/`) per store.
 */
export function inProcessStoreKinds(cleanup: Cleanup, prefix: string): Record<'memory' | 'etcd', StoreKind> {
  let etcd: Promise<EtcdProcess> | undefined;
  let stores = 0;
  return {
    memory: { skip: false, open: () => MemoryStore.open() },
    etcd: {
      skip: skipUnless(['etcd']),
      open: async () => {
        etcd ??= startEtcd({ cleanup });
        return EtcdStore.open({ endpoints: (await etcd).endpoints, prefix: `${prefix}-${++stores}/` });
      },
    },
  };
}
