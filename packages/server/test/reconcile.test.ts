import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryDriver } from '@dotmesh/storage';
import { MemoryStore } from '@dotmesh/store';
import { LABEL_KIND, LABEL_VERSION } from '../src/dots/labels.ts';
import { startInProcess } from './in-process.ts';

/**
 * Start-up recovery rules that failpoints do not reach: pools assembled by hand (as another
 * host, an old version or a half-finished copy could leave them) are reconciled as
 * docs/on-disk-format.md says, and every change is reported.
 */
const NOW = '2026-01-01T00:00:00.000Z';
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

function masterLabel(fsId: string, name: string, createdAt = NOW) {
  return {
    kind: LABEL_KIND,
    version: LABEL_VERSION,
    fsId,
    dotId: fsId,
    branch: 'master',
    origin: null,
    createdAt,
    hiddenCommits: [],
    dot: { namespace: 'admin', name, ownerId: id(0), collaboratorIds: [], createdAt },
  };
}

async function commit(d: MemoryDriver, fsId: string, commitId: string, parent: { fsId: string; commitId: string } | null) {
  await d.commit(fsId, commitId, { metadata: { message: commitId, author: 'admin', timestamp: '1' }, parent });
}

describe('reconcile from a hand-made pool', () => {
  test('adopts complete dots, drops half-created ones, renames clashes, leaves orphans, collects hidden commits', async () => {
    const d = new MemoryDriver({ poolId: 'feedfacecafe0003' });
    // A complete dot with a branch and a hidden commit nothing reaches.
    await d.createVolume(id(1), masterLabel(id(1), 'complete'));
    await commit(d, id(1), 'c1', null);
    await commit(d, id(1), 'c2', { fsId: id(1), commitId: 'c1' });
    await commit(d, id(1), 'gone', { fsId: id(1), commitId: 'c2' });
    await d.writeLabel(id(1), { ...masterLabel(id(1), 'complete'), hiddenCommits: ['gone'] });
    await d.createVolume(
      id(2),
      {
        kind: LABEL_KIND,
        version: LABEL_VERSION,
        fsId: id(2),
        dotId: id(1),
        branch: 'b',
        origin: { fsId: id(1), commitId: 'c1' },
        createdAt: NOW,
        hiddenCommits: [],
      },
      { from: { volumeId: id(1), commitId: 'c1' } },
    );
    // A half-created dot (no initial commit).
    await d.createVolume(id(3), masterLabel(id(3), 'half'));
    // Two dots claiming one name: the younger is renamed.
    await d.createVolume(id(4), masterLabel(id(4), 'twin', '2026-01-01T00:00:00.000Z'));
    await commit(d, id(4), 't1', null);
    await d.createVolume(id(5), masterLabel(id(5), 'twin', '2026-02-01T00:00:00.000Z'));
    await commit(d, id(5), 't2', null);
    // A branch whose dot is not in the pool, and a volume that is not ours.
    await d.createVolume(id(6), {
      kind: LABEL_KIND,
      version: LABEL_VERSION,
      fsId: id(6),
      dotId: id(99),
      branch: 'lost',
      origin: null,
      createdAt: NOW,
      hiddenCommits: [],
    });
    await d.createVolume(id(7), { something: 'else' });

    const s = await startInProcess({ driver: d, store: await MemoryStore.open() });
    try {
      const actions = s.server.recovery.join('\n');
      assert.match(actions, /dropped half-created dot admin\/half/);
      assert.match(actions, /renamed dot admin\/twin .* to twin-RECOVERED-00000000/);
      assert.match(actions, /left orphan branch volume .* \(lost\)/);
      assert.match(actions, /ignored volume .*not a dotmesh branch label/);
      assert.match(actions, /store: adopted dotmesh.io\/registry\/filesystems\/admin\/complete/);
      const list = await s.admin.call('List', null);
      assert.deepEqual(Object.keys(list.admin ?? {}).sort(), ['complete', 'twin', 'twin-RECOVERED-00000000']);
      assert.equal(list.admin?.twin?.Id, id(4), 'the older dot keeps the name');
      assert.deepEqual(
        (await s.admin.call('Commits', { Namespace: 'admin', Name: 'complete', Branch: '' })).map((c) => c.Id),
        ['c1', 'c2'],
      );
      assert.deepEqual(
        (await s.admin.call('Commits', { Namespace: 'admin', Name: 'complete', Branch: 'b' })).map((c) => c.Id),
        ['c1'],
      );
      assert.deepEqual(
        (await d.listCommits(id(1))).map((c) => c.id),
        ['c1', 'c2'],
        'the unreachable hidden commit was deleted',
      );
      assert.deepEqual(
        (await d.listVolumes()).map((v) => v.id).sort(),
        [id(1), id(2), id(4), id(5), id(6), id(7)],
        'the half-created dot is gone; the orphan and the foreign volume stay',
      );
      // A second start changes nothing more.
      const again = await s.restart();
      assert.deepEqual(
        again.server.recovery.filter((a) => !a.startsWith('left orphan') && !a.startsWith('ignored volume')),
        [],
      );
      await again.close();
    } catch (e) {
      await s.close();
      throw e;
    }
  });
});
