import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import type { JoinTokens } from '../cluster/join-tokens.ts';
import { joinTokenHandlers } from './join-token-handlers.ts';

const caller = {} as Parameters<ReturnType<typeof joinTokenHandlers>['ClusterCa']>[0];
const tokens = {} as JoinTokens;

test('ClusterCa: the CA and pin of the join point; UNSUPPORTED on a node without one', async () => {
  const point = {
    address: '10.0.0.1:32609',
    caHash: `sha256:${'ab'.repeat(32)}`,
    caCertificate: '-----BEGIN CERTIFICATE-----\n',
  };
  const withPoint = joinTokenHandlers({ tokens, joinPoint: () => point, etcdMembers: undefined });
  assert.deepEqual(await withPoint.ClusterCa(caller, {}), { Certificate: point.caCertificate, CaHash: point.caHash });
  const without = joinTokenHandlers({ tokens, joinPoint: () => undefined, etcdMembers: undefined });
  await assert.rejects(
    Promise.resolve().then(() => without.ClusterCa(caller, {})),
    (e: unknown) => e instanceof DotmeshError && e.code === 'UNSUPPORTED' && /no node-to-node endpoint/.test(e.message),
  );
});
