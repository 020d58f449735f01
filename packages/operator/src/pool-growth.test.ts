import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planPoolGrowth, quantityBytes } from './pool-growth.ts';

describe('quantityBytes: a storage Quantity in bytes', () => {
  it('reads plain, decimal-suffixed, binary-suffixed, fractional and exponent forms', () => {
    assert.equal(quantityBytes('1073741824'), 2 ** 30);
    assert.equal(quantityBytes('1Gi'), 2 ** 30);
    assert.equal(quantityBytes('1G'), 1e9);
    assert.equal(quantityBytes('1536Mi'), 1536 * 2 ** 20);
    assert.equal(quantityBytes('1.5Gi'), 1.5 * 2 ** 30);
    assert.equal(quantityBytes('500k'), 500_000);
    assert.equal(quantityBytes('2Ki'), 2048);
    assert.equal(quantityBytes('1e9'), 1e9);
    assert.equal(quantityBytes('1E3'), 1000, 'E and digits: an exponent');
    assert.equal(quantityBytes('8P'), 8e15);
    assert.equal(quantityBytes('+3M'), 3e6);
    assert.equal(quantityBytes('0.1'), 1, 'rounded up to a whole byte');
  });

  it('refuses what is no Quantity, or beyond the safe integers (2E: exa)', () => {
    for (const bad of ['', 'Gi', '1GB', '1gi', '1ki', '-1Gi', '1 Gi', 'ten', '1.2.3', '1Zi', '2E', '9Ei']) {
      assert.equal(quantityBytes(bad), undefined, bad);
    }
  });
});

describe('planPoolGrowth: which pool PVCs grow to the wanted size', () => {
  const GiB = 2 ** 30;
  it('grows held PVCs below it, whatever the form of their request; leaves equal ones', () => {
    const plan = planPoolGrowth(
      [
        { name: 'a', held: true, requested: '1Gi' },
        { name: 'b', held: true, requested: String(GiB) },
        { name: 'c', held: true, requested: '2Gi' },
        { name: 'd', held: true, requested: '1000M' },
      ],
      2 * GiB,
    );
    assert.deepEqual(plan.grow, [
      { name: 'a', fromBytes: GiB },
      { name: 'b', fromBytes: GiB },
      { name: 'd', fromBytes: 1e9 },
    ]);
    assert.deepEqual(plan.shrinkRefused, []);
    assert.deepEqual(plan.unreadable, []);
  });

  it('never shrinks: a PVC above the wanted size is refused', () => {
    const plan = planPoolGrowth([{ name: 'a', held: true, requested: '3Gi' }], 2 * GiB);
    assert.deepEqual(plan.grow, []);
    assert.deepEqual(plan.shrinkRefused, [{ name: 'a', requested: '3Gi' }]);
  });

  it('leaves unheld PVCs for when they are adopted; reports unreadable requests', () => {
    const plan = planPoolGrowth(
      [
        { name: 'free', held: false, requested: '1Gi' },
        { name: 'odd', held: true, requested: 'lots' },
        { name: 'none', held: true, requested: undefined },
      ],
      2 * GiB,
    );
    assert.deepEqual(plan.grow, []);
    assert.deepEqual(plan.unreadable, ['odd', 'none']);
  });
});
