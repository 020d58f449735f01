import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { effectiveDurability, withDurability } from './durability.ts';
import { awaitOtherNode, type SyncCommitDeps } from './sync-commit.ts';

describe('effectiveDurability', () => {
  it('takes the branch setting, then the dot one, then the cluster default', () => {
    const record = { default: 'async' as const, branches: { b1: 'sync' as const } };
    assert.deepEqual(effectiveDurability(record, 'b1', false), { durability: 'sync', source: 'branch' });
    assert.deepEqual(effectiveDurability(record, 'b2', true), { durability: 'async', source: 'dot' });
    assert.deepEqual(effectiveDurability({ branches: {} }, 'b2', true), { durability: 'sync', source: 'cluster' });
    assert.deepEqual(effectiveDurability(undefined, 'b2', false), { durability: 'async', source: 'cluster' });
  });

  it('ignores values that are neither sync nor async (a record written by hand)', () => {
    const record = { default: 'fast', branches: { b1: 'maybe' } } as unknown as Parameters<typeof effectiveDurability>[0];
    assert.deepEqual(effectiveDurability(record, 'b1', true), { durability: 'sync', source: 'cluster' });
  });
});

describe('withDurability', () => {
  it('sets and clears the dot default and branch settings; nothing left set removes the record', () => {
    const a = withDurability(undefined, 'd', null, 'sync');
    assert.deepEqual(a, { dot_id: 'd', default: 'sync', branches: {} });
    const b = withDurability(a, 'd', 'f1', 'async');
    assert.deepEqual(b, { dot_id: 'd', default: 'sync', branches: { f1: 'async' } });
    const c = withDurability(b, 'd', null, null);
    assert.deepEqual(c, { dot_id: 'd', branches: { f1: 'async' } });
    assert.equal(withDurability(c, 'd', 'f1', null), undefined);
    assert.deepEqual(a, { dot_id: 'd', default: 'sync', branches: {} }, 'the record given is not changed');
  });
});

describe('awaitOtherNode', () => {
  const node = (id: string, clusterPort = 1) => ({ id, addresses: ['10.0.0.1'], clusterPort });
  const commit = { dotId: 'd', fsId: 'f', commitId: 'c1', what: 'admin/x (branch master)' };
  const deps = (o: Partial<SyncCommitDeps> & Pick<SyncCommitDeps, 'send'>): SyncCommitDeps => ({
    nodeId: 'me',
    view: { nodes: () => [node('me'), node('n2'), node('n3'), node('single', 0)] },
    timeoutMs: 200,
    ...o,
  });
  const notReplicated = (pattern: RegExp) => (e: unknown) => {
    assert.ok(e instanceof DotmeshError);
    assert.equal(e.code, 'NOT_REPLICATED');
    assert.match(e.message, pattern);
    assert.match(e.message, /commit c1 of admin\/x \(branch master\) is held by node me only/);
    assert.match(e.hint ?? '', /do not commit again/);
    assert.equal(e.data?.commitId, 'c1');
    return true;
  };

  it('resolves with the first other node that holds the commit, sending to every live one', async () => {
    const sent: string[] = [];
    const got = await awaitOtherNode(
      deps({
        send: async (_d, _f, to) => {
          sent.push(to);
          if (to === 'n2') await new Promise((r) => setTimeout(r, 1000));
        },
        timeoutMs: 5000,
      }),
      commit,
    );
    assert.equal(got, 'n3');
    assert.deepEqual(sent.sort(), ['n2', 'n3'], 'neither this node nor one without a node endpoint');
  });

  it('one failed send does not fail the commit while another node holds it', async () => {
    const got = await awaitOtherNode(
      deps({ send: async (_d, _f, to) => (to === 'n2' ? Promise.reject(new Error('refused')) : undefined) }),
      commit,
    );
    assert.equal(got, 'n3');
  });

  it('NOT_REPLICATED at once when no other live node exists', async () => {
    let sent = 0;
    await assert.rejects(
      awaitOtherNode(deps({ view: { nodes: () => [node('me')] }, send: async () => void sent++ }), commit),
      notReplicated(/there is no other live node to hold a copy/),
    );
    assert.equal(sent, 0);
  });

  it('NOT_REPLICATED when every send fails, naming why', async () => {
    await assert.rejects(
      awaitOtherNode(deps({ send: async (_d, _f, to) => Promise.reject(new Error(`${to} unreachable`)) }), commit),
      notReplicated(/sending it to the other nodes failed \(n2 unreachable; n3 unreachable\)/),
    );
  });

  it('NOT_REPLICATED within the timeout when no node confirms (a send that never ends)', async () => {
    const started = Date.now();
    await assert.rejects(
      awaitOtherNode(deps({ send: () => new Promise<void>(() => {}) }), commit),
      notReplicated(/no other node confirmed holding it within 200 ms/),
    );
    const took = Date.now() - started;
    assert.ok(took >= 190, `waited the timeout (${took} ms)`);
  });
});
