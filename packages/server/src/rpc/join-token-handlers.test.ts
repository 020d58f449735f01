import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import type { JoinTokens } from '../cluster/join-tokens.ts';
import { joinTokenHandlers } from './join-token-handlers.ts';

const caller = {} as Parameters<ReturnType<typeof joinTokenHandlers>['ClusterCa']>[0];
const tokens = {} as JoinTokens;

test('ClusterCa: the CA and pin of the join point, and whether this node holds the CA key; UNSUPPORTED on a node without one', async () => {
  const point = {
    address: '10.0.0.1:32609',
    caHash: `sha256:${'ab'.repeat(32)}`,
    caCertificate: '-----BEGIN CERTIFICATE-----\n',
  };
  for (const holds of [true, false]) {
    const withPoint = joinTokenHandlers({
      tokens,
      joinPoint: () => ({ ...point, holdsCaKey: async () => holds }),
      etcdMembers: undefined,
    });
    assert.deepEqual(await withPoint.ClusterCa(caller, {}), {
      Certificate: point.caCertificate,
      CaHash: point.caHash,
      HoldsCaKey: holds,
    });
  }
  const noIssuer = joinTokenHandlers({ tokens, joinPoint: () => point, etcdMembers: undefined });
  assert.equal((await noIssuer.ClusterCa(caller, {})).HoldsCaKey, false, 'a node where no host joins holds no key to use');
  const without = joinTokenHandlers({ tokens, joinPoint: () => undefined, etcdMembers: undefined });
  await assert.rejects(
    Promise.resolve().then(() => without.ClusterCa(caller, {})),
    (e: unknown) => e instanceof DotmeshError && e.code === 'UNSUPPORTED' && /no node-to-node endpoint/.test(e.message),
  );
});

test('EtcdMembers and RemoveEtcdMember: UNSUPPORTED on an etcd Dotmesh does not run; the members as etcd lists them', async () => {
  const without = joinTokenHandlers({ tokens, joinPoint: () => undefined, etcdMembers: undefined });
  for (const call of [
    async () => without.EtcdMembers(caller, {}),
    async () => without.RemoveEtcdMember(caller, { Node: 'n1' }),
  ] as (() => Promise<unknown>)[]) {
    await assert.rejects(
      Promise.resolve().then(call),
      (e: unknown) => e instanceof DotmeshError && e.code === 'UNSUPPORTED' && /not run by Dotmesh/.test(e.message),
    );
  }
  const member = {
    id: '123',
    name: 'n1',
    peerUrls: ['https://10.0.0.1:42380'],
    clientUrls: ['https://10.0.0.1:42379'],
    learner: false,
  };
  const handlers = joinTokenHandlers({
    tokens,
    joinPoint: () => undefined,
    etcdMembers: { list: async () => [member], remove: async () => ({ removed: true, members: 0 }) },
  });
  assert.deepEqual(await handlers.EtcdMembers(caller, {}), {
    Members: [
      { Id: '123', Name: 'n1', Learner: false, PeerUrls: ['https://10.0.0.1:42380'], ClientUrls: ['https://10.0.0.1:42379'] },
    ],
  });
  await assert.rejects(
    Promise.resolve().then(() => handlers.RemoveEtcdMember(caller, { Node: '../x' })),
    (e: unknown) => e instanceof DotmeshError && e.code === 'INVALID_ARGUMENT',
  );
});
