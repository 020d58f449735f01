import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CommitOrigin } from '@dotmesh/core';
import { chooseNewMaster } from './failover.ts';
import { pinSource, withPinned } from './pinned.ts';
import type { BranchStateRecord } from './store-keys.ts';
import type { ClusterNode } from './view.ts';

/** A view of live nodes and their copies of branch `f`, each copy holding the history `c1…c<n>`. */
function view(live: Record<string, number>, copies: Record<string, number>, clusterPort = 1) {
  const history = (n: number): CommitOrigin[] => Array.from({ length: n }, (_, i) => ({ fsId: 'f', commitId: `c${i + 1}` }));
  return {
    node: (id: string): ClusterNode | undefined => (id in live ? { id, addresses: ['10.0.0.1'], clusterPort } : undefined),
    copiesOf: (fsId: string): ReadonlyMap<string, BranchStateRecord> =>
      new Map(
        fsId !== 'f'
          ? []
          : Object.entries(copies).map(([id, n]) => [
              id,
              {
                id,
                filesystem_id: 'f',
                state: { state: 'inactive' as const, status: '' },
                head: n === 0 ? null : { fsId: 'f', commitId: `c${n}` },
                commitCount: n,
              },
            ]),
      ),
    historyOn: (nodeId: string, head: CommitOrigin | null) =>
      head ? history(Math.min(Number(head.commitId.slice(1)), copies[nodeId] ?? 0)) : [],
  };
}

describe('chooseNewMaster', () => {
  it('takes the live node whose copy holds the longest history', () => {
    const v = view({ n2: 1, n3: 1 }, { gone: 5, n2: 3, n3: 4 });
    assert.equal(chooseNewMaster(v, 'f', 'gone')?.nodeId, 'n3');
    assert.equal(chooseNewMaster(v, 'f', 'gone')?.history.length, 4);
  });

  it('breaks ties by the lowest node id, whatever the order the copies come in', () => {
    assert.equal(chooseNewMaster(view({ nb: 1, na: 1 }, { nb: 3, na: 3 }), 'f', 'gone')?.nodeId, 'na');
  });

  it('never picks the gone node, a node that is not live, a copy without a head, or a node without a cluster port', () => {
    assert.equal(chooseNewMaster(view({ gone: 1, n2: 1 }, { gone: 9, n2: 2 }), 'f', 'gone')?.nodeId, 'n2');
    assert.equal(chooseNewMaster(view({ n2: 1 }, { n2: 2, n3: 7 }), 'f', 'gone')?.nodeId, 'n2');
    assert.equal(chooseNewMaster(view({ n2: 1 }, { n2: 0 }), 'f', 'gone'), undefined);
    assert.equal(chooseNewMaster(view({ n2: 1 }, { n2: 2 }, 0), 'f', 'gone'), undefined);
    assert.equal(chooseNewMaster(view({ n2: 1 }, { n2: 2 }), 'other', 'gone'), undefined, 'no copy: nowhere to go');
  });
});

describe('withPinned and pinSource', () => {
  it('pins and unpins the dot and its branches; nothing left pinned removes the record', () => {
    const a = withPinned(undefined, 'd', 'f1', true);
    assert.deepEqual(a, { dot_id: 'd', dot: false, branches: ['f1'] });
    assert.deepEqual(withPinned(a, 'd', 'f1', true), a, 'pinning twice changes nothing');
    const b = withPinned(a, 'd', null, true);
    assert.deepEqual(b, { dot_id: 'd', dot: true, branches: ['f1'] });
    assert.equal(pinSource(b, 'f1'), 'branch');
    assert.equal(pinSource(b, 'f2'), 'dot', 'a branch of a pinned dot is pinned');
    const c = withPinned(b, 'd', 'f1', false);
    assert.equal(pinSource(c, 'f1'), 'dot', 'unpinning the branch leaves the dot pinned');
    assert.equal(withPinned(c, 'd', null, false), undefined);
    assert.equal(pinSource(undefined, 'f1'), '');
    assert.deepEqual(a, { dot_id: 'd', dot: false, branches: ['f1'] }, 'the record given is not changed');
  });
});
