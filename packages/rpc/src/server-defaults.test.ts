import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { POOL_VOLUME_RESERVE_BYTES, poolSizeOnVolume } from './server-defaults.ts';

describe('poolSizeOnVolume: the pool file on a volume of its own', () => {
  const MiB = 2 ** 20;
  it('leaves 256 MiB and 5 % of the volume, in whole MiB, never below 0', () => {
    assert.equal(POOL_VOLUME_RESERVE_BYTES, 256 * MiB);
    assert.equal(poolSizeOnVolume(4 * 2 ** 30), Math.floor((4 * 2 ** 30 * 0.95 - 256 * MiB) / MiB) * MiB);
    assert.equal(poolSizeOnVolume(2 ** 30), 716 * MiB);
    assert.equal(poolSizeOnVolume(512 * MiB), 230 * MiB);
    assert.equal(poolSizeOnVolume(4 * 2 ** 30 + 12345) % MiB, 0);
    assert.equal(poolSizeOnVolume(200 * MiB), 0);
  });
  it('grows with its volume: a bigger volume never gives a smaller pool', () => {
    let last = 0;
    for (let v = 0; v <= 8 * 2 ** 30; v += 97 * MiB + 4096) {
      const size = poolSizeOnVolume(v);
      assert.ok(size >= last, `${v}: ${size} < ${last}`);
      last = size;
    }
  });
});
