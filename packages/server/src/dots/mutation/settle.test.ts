import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { MemoryStore, type TxnOp } from '@dotmesh/store';
import { wasApplied } from './settle.ts';

test('wasApplied: a transaction counts as applied when its puts hold its values at one revision; lasting keys decide over leased ones; no answer is undefined', async () => {
  const store = await MemoryStore.open();
  try {
    const lease = await store.grantLease(60);
    const create: TxnOp[] = [
      { type: 'put', key: 'registry/a', value: 'dot-1' },
      { type: 'put', key: 'masters/f1', value: 'node-1' },
      { type: 'put', key: 'own/state/f1', value: 'active', lease },
    ];
    assert.equal(await wasApplied(store, create), false, 'nothing written yet');
    await store.txn({ compare: [], success: create });
    assert.equal(await wasApplied(store, create), true);
    await store.revokeLease(lease); // the node's lease ended during the outage: its own key is gone
    assert.equal(await wasApplied(store, create), true, 'the lasting keys still say it was applied');

    const commit: TxnOp[] = [{ type: 'put', key: 'own/commit/c1', value: 'c1', lease: await store.grantLease(60) }];
    assert.equal(await wasApplied(store, commit), false);
    // The same values written by two transactions (one of them another writer's) are not one txn.
    await store.put('registry/b', 'x');
    await store.put('masters/f2', 'y');
    const two: TxnOp[] = [
      { type: 'put', key: 'registry/b', value: 'x' },
      { type: 'put', key: 'masters/f2', value: 'y' },
    ];
    assert.equal(await wasApplied(store, two), false, 'values at different revisions are not one transaction');

    const deletes: TxnOp[] = [{ type: 'delete', key: 'registry/a' }];
    assert.equal(await wasApplied(store, deletes), false);
    await store.delete('registry/a');
    assert.equal(await wasApplied(store, deletes), true);

    const down = { get: () => Promise.reject(new DotmeshError('UNAVAILABLE', 'no quorum')) };
    assert.equal(await wasApplied(down, create), undefined, 'a store that does not answer decides nothing');
  } finally {
    await store.close();
  }
});
