import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import { MemoryDriver } from '@dotmesh/storage';
import type { DotIndex } from '../dots/dot-index.ts';
import { BranchFence, leadMsFor } from './fence.ts';
import { MasterNodes } from './master-nodes.ts';

/**
 * The fence's decisions, on the memory driver (its read-only flag makes writes fail with EROFS)
 * and the real MasterNodes, with a lease whose time left the test sets. The real btrfs `ro`
 * property and a node cut off from a real etcd: btrfs.test.ts and e2e cluster-fence.test.ts.
 */
const ME = 'node-a';
const OTHER = 'node-b';
const silent = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

async function harness() {
  const driver = new MemoryDriver();
  const labels = new Map<string, { dotId: string; branch: string; replica?: boolean }>([
    ['fs-master', { dotId: 'fs-master', branch: 'master' }],
    ['fs-b', { dotId: 'fs-master', branch: 'b' }],
    ['fs-replica', { dotId: 'fs-master', branch: 'r', replica: true }],
  ]);
  for (const fsId of labels.keys()) await driver.createVolume(fsId, {});
  const index = {
    branches: new Map([...labels].map(([fsId, label]) => [fsId, { label }])),
    dots: new Map([['fs-master', { info: { namespace: 'admin', name: 'apples' } }]]),
  } as unknown as DotIndex;
  const masterNodes = new MasterNodes(ME);
  for (const fsId of labels.keys()) masterNodes.set(fsId, labels.get(fsId)?.replica ? OTHER : ME, 1);
  let remaining = 5000;
  const lost: string[] = [];
  const fence = new BranchFence({
    driver,
    index,
    masterNodes,
    lease: { remainingMs: () => remaining },
    logger: silent,
    now: () => new Date('2026-12-06T10:00:00Z'),
    leadMs: 1000,
  });
  const regain = {
    caughtUp: async () => {},
    lost: async (fsId: string) => {
      lost.push(fsId);
    },
  };
  const setRemaining = (ms: number) => {
    remaining = ms;
  };
  return { driver, fence, masterNodes, regain, lost, setRemaining };
}

describe('the fence (never two writers)', () => {
  test('the lead: a second before the deadline, less on a short TTL', () => {
    assert.equal(leadMsFor({ ttlSeconds: 10, marginMs: 2000 }), 1000);
    assert.equal(leadMsFor({ ttlSeconds: 4, marginMs: 800 }), 400);
  });

  test('near the deadline every branch held as master turns read-only, with the reason in refusals', async () => {
    const { driver, fence, setRemaining } = await harness();
    await fence.check();
    assert.equal(await driver.liveReadOnly('fs-master'), false, 'time left: nothing fenced');
    setRemaining(900);
    await fence.check();
    assert.equal(await driver.liveReadOnly('fs-master'), true);
    assert.equal(await driver.liveReadOnly('fs-b'), true);
    assert.equal(await driver.liveReadOnly('fs-replica'), false, 'a replica is not this node’s to fence');
    await assert.rejects(driver.writeFile('fs-master', 'f', 'x'), { code: 'EROFS' });
    assert.throws(
      () => fence.assertWritable(['fs-b'], 'commit admin/apples'),
      (e: unknown) =>
        isDotmeshError(e) &&
        e.code === 'UNAVAILABLE' &&
        e.message ===
          'cannot commit admin/apples: this node lost contact with the cluster store at 2026-12-06T10:00:00.000Z: admin/apples@b is read-only until it reaches the store again and still masters the branch',
    );
    fence.assertWritable(['fs-replica'], 'anything');
    assert.deepEqual(Object.keys(fence.state()).sort(), ['fence.fs-b', 'fence.fs-master']);
  });

  test('back in contact: still the master → writable; another master → handed to `lost`, kept read-only', async () => {
    const { driver, fence, masterNodes, regain, lost, setRemaining } = await harness();
    fence.start(regain);
    fence.stop(); // the test drives check() itself
    setRemaining(0);
    await fence.check();
    masterNodes.set('fs-b', OTHER, 2);
    setRemaining(8000);
    await fence.check();
    assert.equal(await driver.liveReadOnly('fs-master'), false);
    fence.assertWritable(['fs-master'], 'commit');
    await driver.writeFile('fs-master', 'f', 'x');
    assert.deepEqual(lost, ['fs-b']);
    assert.equal(await driver.liveReadOnly('fs-b'), true, 'another node masters it: it stays read-only');
    assert.deepEqual(fence.state(), {});
  });

  test('at start: a copy another node masters turns read-only; one left read-only that this node masters turns writable', async () => {
    const { driver, fence, masterNodes } = await harness();
    masterNodes.set('fs-b', OTHER, 2);
    await driver.setLiveReadOnly('fs-master', true);
    await fence.atStart();
    assert.equal(await driver.liveReadOnly('fs-b'), true);
    assert.equal(await driver.liveReadOnly('fs-master'), false);
    assert.equal(await driver.liveReadOnly('fs-replica'), false);
  });
});
