import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from '../engine/limits.ts';
import { type OpenStore, withStore } from './fixture.ts';

export function kvTests(open: OpenStore): void {
  describe('keys and revisions', () => {
    test('put creates a key at version 1 with createRevision = modRevision = the write revision', () =>
      withStore(open, async ({ store }) => {
        const before = await store.revision();
        const { revision } = await store.put('a', 'one');
        assert.equal(revision, before + 1);
        assert.deepEqual(await store.get('a'), {
          key: 'a',
          value: 'one',
          createRevision: revision,
          modRevision: revision,
          version: 1,
        });
        assert.equal(await store.revision(), revision);
      }));

    test('put on an existing key bumps version and modRevision, keeps createRevision', () =>
      withStore(open, async ({ store }) => {
        const first = await store.put('a', 'one');
        await store.put('other', 'x');
        const third = await store.put('a', 'two');
        assert.equal(third.revision, first.revision + 2);
        assert.deepEqual(await store.get('a'), {
          key: 'a',
          value: 'two',
          createRevision: first.revision,
          modRevision: third.revision,
          version: 2,
        });
      }));

    test('get of a missing key is undefined', () =>
      withStore(open, async ({ store }) => {
        assert.equal(await store.get('missing'), undefined);
      }));

    test('delete removes a key in one revision; deleting a missing key succeeds without a bump', () =>
      withStore(open, async ({ store }) => {
        const put = await store.put('a', 'one');
        const del = await store.delete('a');
        assert.deepEqual(del, { revision: put.revision + 1, deleted: 1 });
        assert.equal(await store.get('a'), undefined);
        assert.deepEqual(await store.delete('a'), { revision: del.revision, deleted: 0 });
        assert.deepEqual(await store.delete('never'), { revision: del.revision, deleted: 0 });
        assert.equal(await store.revision(), del.revision);
      }));

    test('a key put again after delete starts over at version 1 with a new createRevision', () =>
      withStore(open, async ({ store }) => {
        await store.put('a', 'one');
        await store.put('a', 'two');
        await store.delete('a');
        const again = await store.put('a', 'three');
        const kv = await store.get('a');
        assert.equal(kv?.version, 1);
        assert.equal(kv?.createRevision, again.revision);
        assert.equal(kv?.value, 'three');
      }));

    test('range returns the keys under a prefix sorted by UTF-8 bytes, and the revision read at', () =>
      withStore(open, async ({ store }) => {
        for (const key of ['p/b', 'p/\u{1F600}', 'p/a/x', 'p/\uFFFF', 'p/a', 'p', 'q/a', 'o/z']) await store.put(key, `v:${key}`);
        const { kvs, revision } = await store.range('p/');
        // U+FFFF (EF BF BF) sorts before U+1F600 (F0 9F 98 80) in UTF-8, unlike in UTF-16.
        assert.deepEqual(
          kvs.map((kv) => kv.key),
          ['p/a', 'p/a/x', 'p/b', 'p/\uFFFF', 'p/\u{1F600}'],
        );
        assert.equal(kvs[0]?.value, 'v:p/a');
        assert.equal(revision, await store.revision());
        assert.equal((await store.range('')).kvs.length, 8);
        assert.deepEqual((await store.range('nothing/')).kvs, []);
      }));

    test('deletePrefix deletes exactly the keys under the prefix in one revision', () =>
      withStore(open, async ({ store }) => {
        for (const key of ['d/1', 'd/2', 'd/3/x', 'd', 'e/1']) await store.put(key, 'v');
        const before = await store.revision();
        assert.deepEqual(await store.deletePrefix('d/'), { revision: before + 1, deleted: 3 });
        assert.deepEqual(
          (await store.range('')).kvs.map((kv) => kv.key),
          ['d', 'e/1'],
        );
        assert.deepEqual(await store.deletePrefix('d/'), { revision: before + 1, deleted: 0 });
        assert.equal(await store.revision(), before + 1);
      }));

    test('values round-trip exactly', () =>
      withStore(open, async ({ store }) => {
        const values = [
          '',
          ' spaced ',
          'line\nbreak',
          'ünïcødé \u{1F600}',
          JSON.stringify({ a: [1, 2] }),
          'x'.repeat(1024 * 1024),
        ];
        for (const [i, value] of values.entries()) await store.put(`v/${i}`, value);
        for (const [i, value] of values.entries()) assert.equal((await store.get(`v/${i}`))?.value, value);
      }));

    test('limits: empty or oversized keys and oversized values fail with INVALID_ARGUMENT', () =>
      withStore(open, async ({ store }) => {
        const invalid = { code: 'INVALID_ARGUMENT' };
        await assert.rejects(store.put('', 'v'), invalid);
        await assert.rejects(store.put('k'.repeat(MAX_KEY_BYTES + 1), 'v'), invalid);
        // 2,049 characters but 4,098 UTF-8 bytes: the limit counts bytes.
        await assert.rejects(store.put('é'.repeat(MAX_KEY_BYTES / 2 + 1), 'v'), invalid);
        await assert.rejects(store.put('k', 'v'.repeat(MAX_VALUE_BYTES + 1)), { code: 'INVALID_ARGUMENT', message: /value/ });
        await assert.rejects(store.get(''), invalid);
        await assert.rejects(store.put('lone\uD800', 'v'), invalid);
        assert.equal((await store.range('')).kvs.length, 0);
        await store.put('k'.repeat(MAX_KEY_BYTES), 'fits');
        assert.equal((await store.get('k'.repeat(MAX_KEY_BYTES)))?.value, 'fits');
      }));

    test('a closed store fails every call with UNAVAILABLE; close is idempotent', () =>
      withStore(open, async ({ store }) => {
        await store.close();
        await store.close();
        await assert.rejects(store.get('a'), { code: 'UNAVAILABLE' });
        await assert.rejects(store.put('a', 'v'), { code: 'UNAVAILABLE' });
      }));
  });
}
