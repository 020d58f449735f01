import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MountRefs } from './mount-refs.ts';

describe('MountRefs', () => {
  it('counts mounts per Docker mount ID, idempotently', () => {
    const refs = new MountRefs();
    refs.mount('apples', 'id1');
    refs.mount('apples', 'id1');
    refs.mount('apples', 'id2');
    assert.equal(refs.count('apples'), 2);
    refs.unmount('apples', 'id1');
    assert.equal(refs.count('apples'), 1);
    refs.unmount('apples', 'id2');
    assert.equal(refs.count('apples'), 0);
    assert.deepEqual(refs.snapshot(), {});
  });

  it('after a restart, counts restored from running containers are released by unknown IDs', () => {
    const refs = new MountRefs();
    refs.restore(new Map([['db', 2]]));
    refs.mount('db', 'new');
    assert.deepEqual(refs.snapshot(), { db: 3 });
    refs.unmount('db', 'made-before-the-restart');
    refs.unmount('db', 'new');
    assert.equal(refs.count('db'), 1);
    refs.unmount('db', 'another-old-one');
    refs.unmount('db', 'one-too-many');
    assert.equal(refs.count('db'), 0, 'never negative');
  });
});
