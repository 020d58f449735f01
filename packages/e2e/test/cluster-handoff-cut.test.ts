import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, type DotmeshNode, type DotmeshTestCluster, skipUnless, startDotmeshCluster, waitFor } from '@dotmesh/testkit';
import {
  commit,
  commitIds,
  commitsOf,
  fileHash,
  listedMaster,
  logged,
  lookup,
  masterKey,
  procure,
  setLinks,
  sha256,
} from './cluster-helpers.ts';

/**
 * A handoff cut by the network: node 2 asks for a branch node 1 masters (Procure, as `dm mount`
 * and Docker do); node 1 commits the uncommitted data (`migration`) to send it, and then its
 * links go down for longer than its lease. Where the send was when the links went is up to the
 * machine's speed: cut short (node 2 fails the branch over with the commits it holds, and node
 * 1, back, keeps the migration commit on a -DIVERGED- branch) or done (node 2 fails over with
 * it, or node 1 kept the branch). Either way, once healed, both nodes name one master, the one
 * in etcd, the acknowledged commits are in the branch, and the committed data is in a branch.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);

const WAIT = { timeoutMs: 120_000, intervalMs: 200 } as const;

describe('a handoff whose old master is cut off mid-send', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let n1: DotmeshNode;
  let n2: DotmeshNode;
  before(async () => {
    // With replication (the default): the commit made before the handoff is acknowledged once
    // node 2 holds it (sync), so only the handoff's own migration commit is in flight.
    cluster = await startDotmeshCluster({ cleanup, nodes: 2 });
    [n1, n2] = cluster.nodes as [DotmeshNode, DotmeshNode];
  });
  after(() => cleanup.run());

  test(
    "the old master's links go down mid-handoff for longer than its lease: one master, every acknowledged commit in the branch, the handoff's committed data in a branch",
    logged(
      () => cluster,
      async () => {
        const mount = await procure(n1, 'cut');
        const fsId = await lookup(n1, 'cut');
        await writeFile(join(mount, 'SMALL'), 'committed');
        const before = await commit(n1, 'cut', 'before the handoff');
        const big = randomBytes(4 * 1024 * 1024);
        await writeFile(join(mount, 'BIG'), big);

        const handoff = n2.admin.call('Procure', { Namespace: 'admin', Name: 'cut', Subdot: '' }).catch((e: unknown) => e);
        await waitFor(async () => (await commitsOf(n1, 'cut')).at(-1)?.Metadata.type === 'migration', {
          ...WAIT,
          intervalMs: 20,
          what: 'node 1 to commit the uncommitted data for the handoff',
        });
        await setLinks(n1, 'down');
        // Longer than node 1's lease (10 s): node 2 sees it gone.
        await waitFor(async () => !(await n2.admin.call('AllDotsAndBranches', null)).Servers.some((sv) => sv.Id === n1.nodeId), {
          ...WAIT,
          what: 'node 2 to see node 1 gone',
        });
        await setLinks(n1, 'up');
        await handoff;

        // One master: the one etcd names, as both nodes list it.
        const master = await waitFor(
          async () => {
            const key = await masterKey(cluster, fsId);
            const listed = await Promise.all([n1, n2].map((n) => listedMaster(n, 'cut').catch(() => undefined)));
            return key !== undefined && listed.every((m) => m === key) ? key : undefined;
          },
          { ...WAIT, what: 'both nodes to name the master etcd names' },
        );
        assert.ok(master === n1.nodeId || master === n2.nodeId);
        assert.ok(
          (await commitIds(n2, 'cut')).includes(before),
          'the acknowledged commit made before the handoff is in the branch',
        );

        // The data the handoff committed (`migration`) is kept: in the branch if node 1 kept it or
        // sent it in time, else on the -DIVERGED- branch node 1 makes of what only it held once it
        // sees node 2 took the branch over. A Procure on node 2 reaches either.
        const holder = await waitFor(
          async () => {
            const branches: string[] = await n2.admin.call('Branches', { Namespace: 'admin', Name: 'cut' });
            for (const b of branches) {
              const path = await procure(n2, b === 'master' ? 'cut' : `cut@${b}`).catch(() => undefined);
              if (path && (await fileHash(join(path, 'BIG')).catch(() => '')) === sha256(big)) return b;
            }
            return undefined;
          },
          { ...WAIT, what: 'the committed BIG file in a branch of the dot' },
        );
        assert.ok(holder === 'master' || holder.includes('-DIVERGED-'), holder);
        assert.equal(await fileHash(join(await procure(n2, 'cut'), 'SMALL')), sha256(Buffer.from('committed')));
      },
    ),
  );
});
