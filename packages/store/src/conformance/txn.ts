import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Compare, CompareOp, CompareTarget } from '../store.ts';
import { type OpenStore, withStore } from './fixture.ts';

function cmp(key: string, target: CompareTarget, op: CompareOp, value: string | number): Compare {
  return { key, target, op, value };
}

export function txnTests(open: OpenStore): void {
  describe('txn', () => {
    test('compares that hold apply the success ops in one revision and return their gets', () =>
      withStore(open, async ({ store }) => {
        await store.put('a', '1');
        const before = await store.revision();
        const result = await store.txn({
          compare: [cmp('a', 'value', '==', '1')],
          success: [
            { type: 'put', key: 'b', value: '2' },
            { type: 'put', key: 'c', value: '3' },
            { type: 'get', key: 'a' },
          ],
          failure: [{ type: 'put', key: 'failed', value: 'yes' }],
        });
        assert.equal(result.succeeded, true);
        assert.equal(result.revision, before + 1);
        assert.equal(result.gets.length, 1);
        assert.equal(result.gets[0]?.value, '1');
        assert.equal((await store.get('b'))?.modRevision, before + 1);
        assert.equal((await store.get('c'))?.modRevision, before + 1);
        assert.equal(await store.get('failed'), undefined);
        assert.equal(await store.revision(), before + 1);
      }));

    test('a compare that fails applies the failure ops only', () =>
      withStore(open, async ({ store }) => {
        await store.put('a', '1');
        const result = await store.txn({
          compare: [cmp('a', 'value', '==', 'nope')],
          success: [{ type: 'put', key: 'b', value: 'success' }],
          failure: [
            { type: 'get', key: 'a' },
            { type: 'delete', key: 'a' },
            { type: 'get', key: 'b' },
          ],
        });
        assert.equal(result.succeeded, false);
        assert.equal(result.gets[0]?.value, '1');
        assert.equal(result.gets[1], undefined);
        assert.equal(await store.get('a'), undefined);
        assert.equal(await store.get('b'), undefined);
      }));

    test('a failed txn without failure ops changes nothing and keeps the revision', () =>
      withStore(open, async ({ store }) => {
        await store.put('a', '1');
        const before = await store.revision();
        const result = await store.txn({
          compare: [cmp('a', 'version', '==', 7)],
          success: [{ type: 'put', key: 'a', value: 'x' }],
        });
        assert.deepEqual(result, { succeeded: false, revision: before, gets: [] });
        assert.equal(await store.revision(), before);
      }));

    test('a missing key has version, createRevision and modRevision 0; a value compare on it is false', () =>
      withStore(open, async ({ store }) => {
        for (const target of ['version', 'createRevision', 'modRevision'] as const) {
          assert.equal((await store.txn({ compare: [cmp('m', target, '==', 0)], success: [] })).succeeded, true, target);
          assert.equal((await store.txn({ compare: [cmp('m', target, '>', 0)], success: [] })).succeeded, false, target);
        }
        assert.equal((await store.txn({ compare: [cmp('m', 'value', '==', '')], success: [] })).succeeded, false);
        assert.equal((await store.txn({ compare: [cmp('m', 'value', '!=', 'x')], success: [] })).succeeded, false);
      }));

    test('every target and op compares as documented', () =>
      withStore(open, async ({ store }) => {
        const created = await store.put('k', 'm');
        const modified = await store.put('k', 'm2');
        await store.put('k', 'm');
        const holds = async (c: Compare) => (await store.txn({ compare: [c], success: [] })).succeeded;
        assert.equal(await holds(cmp('k', 'version', '==', 3)), true);
        assert.equal(await holds(cmp('k', 'version', '!=', 3)), false);
        assert.equal(await holds(cmp('k', 'version', '<', 4)), true);
        assert.equal(await holds(cmp('k', 'version', '>', 3)), false);
        assert.equal(await holds(cmp('k', 'createRevision', '==', created.revision)), true);
        assert.equal(await holds(cmp('k', 'createRevision', '<', modified.revision)), true);
        assert.equal(await holds(cmp('k', 'modRevision', '>', modified.revision)), true);
        assert.equal(await holds(cmp('k', 'modRevision', '==', modified.revision)), false);
        assert.equal(await holds(cmp('k', 'value', '==', 'm')), true);
        assert.equal(await holds(cmp('k', 'value', '!=', 'm')), false);
        assert.equal(await holds(cmp('k', 'value', '<', 'n')), true);
        assert.equal(await holds(cmp('k', 'value', '>', 'l')), true);
        assert.equal(await holds(cmp('k', 'value', '>', 'm')), false);
      }));

    test('all compares must hold', () =>
      withStore(open, async ({ store }) => {
        await store.put('a', '1');
        await store.put('b', '2');
        const run = (bValue: string) =>
          store.txn({ compare: [cmp('a', 'value', '==', '1'), cmp('b', 'value', '==', bValue)], success: [] });
        assert.equal((await run('2')).succeeded, true);
        assert.equal((await run('3')).succeeded, false);
      }));

    test('ops run in order: a get sees the puts and deletes before it in the same txn', () =>
      withStore(open, async ({ store }) => {
        await store.put('x', 'old');
        await store.put('gone/1', 'v');
        const before = await store.revision();
        const result = await store.txn({
          compare: [],
          success: [
            { type: 'get', key: 'x' },
            { type: 'put', key: 'x', value: 'new' },
            { type: 'get', key: 'x' },
            { type: 'deletePrefix', prefix: 'gone/' },
            { type: 'get', key: 'gone/1' },
          ],
        });
        assert.equal(result.gets[0]?.value, 'old');
        assert.equal(result.gets[1]?.value, 'new');
        assert.equal(result.gets[1]?.modRevision, before + 1);
        assert.equal(result.gets[1]?.version, 2);
        assert.equal(result.gets[2], undefined);
        assert.equal(result.revision, before + 1);
      }));

    test('a txn with only gets, or deletes of missing keys, does not bump the revision', () =>
      withStore(open, async ({ store }) => {
        await store.put('a', '1');
        const before = await store.revision();
        const result = await store.txn({
          compare: [],
          success: [
            { type: 'get', key: 'a' },
            { type: 'delete', key: 'missing' },
            { type: 'deletePrefix', prefix: 'none/' },
          ],
        });
        assert.equal(result.revision, before);
        assert.equal(await store.revision(), before);
      }));

    test('a branch writing one key twice fails with INVALID_ARGUMENT and applies nothing', () =>
      withStore(open, async ({ store }) => {
        const twice = store.txn({
          compare: [],
          success: [
            { type: 'put', key: 'other', value: '1' },
            { type: 'put', key: 'k', value: '1' },
            { type: 'put', key: 'k', value: '2' },
          ],
        });
        await assert.rejects(twice, { code: 'INVALID_ARGUMENT' });
        const putAndDelete = store.txn({
          compare: [],
          success: [],
          failure: [
            { type: 'deletePrefix', prefix: 'k' },
            { type: 'put', key: 'k/1', value: '1' },
          ],
        });
        await assert.rejects(putAndDelete, { code: 'INVALID_ARGUMENT' });
        assert.equal(await store.get('other'), undefined);
      }));

    test('a put with an unknown lease fails the whole txn with LEASE_NOT_FOUND', () =>
      withStore(open, async ({ store }) => {
        const before = await store.revision();
        const txn = store.txn({
          compare: [],
          success: [
            { type: 'put', key: 'plain', value: '1' },
            { type: 'put', key: 'leased', value: '1', lease: '7fffffff0badf00d' },
          ],
        });
        await assert.rejects(txn, { code: 'LEASE_NOT_FOUND' });
        assert.equal(await store.get('plain'), undefined);
        assert.equal(await store.revision(), before);
      }));
  });
}
