import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { MemoryStore } from '@dotmesh/store';
import { announceRestart, pendingRestart } from '../cluster/planned-restart.ts';
import type { DotContext } from '../dots/context.ts';
import { createLogger } from '../log.ts';
import { clusterHandlers } from './cluster-handlers.ts';

const caller = { id: 'admin-id', name: 'admin', authMethod: 'internal' } as Parameters<
  ReturnType<typeof clusterHandlers>['EndPlannedRestart']
>[0];

test('EndPlannedRestart: ends an away node’s planned restart once; refuses a live node, this node and a bad id', async (t) => {
  const store = await MemoryStore.open();
  t.after(() => store.close());
  const logger = createLogger({ level: 'silent' });
  // This node is `here`; `live` holds its lease; `away` stopped cleanly and announced a restart.
  const ctx = {
    nodeId: 'here',
    logger,
    view: { node: (id: string) => (id === 'live' ? { id } : undefined) },
  } as unknown as DotContext;
  const handlers = clusterHandlers({ ctx, store });
  await announceRestart(store, 'away', 120, logger);
  assert.ok(await pendingRestart(store, 'away'));

  assert.deepEqual(await handlers.EndPlannedRestart(caller, { Node: 'away' }), { Ended: true });
  assert.equal(await pendingRestart(store, 'away'), undefined, 'failover no longer waits for it');
  assert.deepEqual(await handlers.EndPlannedRestart(caller, { Node: 'away' }), { Ended: false }, 'nothing left to end');

  for (const [node, why] of [
    ['live', /node live is live: it has no planned restart to end/],
    ['here', /node here is live/],
    ['../x', /"\.\.\/x" is not a node id/],
    ['', /"" is not a node id/],
  ] as const) {
    await assert.rejects(
      Promise.resolve().then(() => handlers.EndPlannedRestart(caller, { Node: node })),
      (e: unknown) => e instanceof DotmeshError && e.code === 'INVALID_ARGUMENT' && why.test(e.message),
      node,
    );
  }
});
