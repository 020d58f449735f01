import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runStoreConformance } from '../conformance.ts';
import { MemoryStore } from './memory-store.ts';

// Real time: proves the system-clock lease timer (the embedded suite uses a ManualClock).
runStoreConformance('MemoryStore', async () => {
  let store = new MemoryStore();
  return {
    store,
    reopen: async () => {
      await store.close();
      store = new MemoryStore({ backend: store.backend });
      return store;
    },
    cleanup: async () => {},
  };
});

test('MemoryStore: a watch from a compacted revision fails with COMPACTED', async () => {
  const store = new MemoryStore({ historyRevisions: 5 });
  try {
    for (let i = 0; i < 10; i++) await store.put('k', String(i));
    await assert.rejects(
      store.watch('', { fromRevision: 4 }, () => {}),
      { code: 'COMPACTED', data: { fromRevision: 4, compactedRevision: 5 } },
    );
    const seen: number[] = [];
    const watcher = await store.watch('', { fromRevision: 5 }, (events) => seen.push(...events.map((e) => e.revision)));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(seen, [6, 7, 8, 9, 10]);
    await watcher.cancel();
  } finally {
    await store.close();
  }
});
