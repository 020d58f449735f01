import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TransferPollResult } from '@dotmesh/rpc';
import { MemoryStore } from '@dotmesh/store';
import type { TransferLogger } from './host.ts';
import { INTERRUPTED_MESSAGE, TRANSFERS_PREFIX, TransferRecords } from './records.ts';

const SILENT_LOGGER: TransferLogger = { info: () => {}, warn: () => {}, error: () => {} };

const record = (id: string, node: string): TransferPollResult & { owner: string } => ({
  TransferRequestId: id,
  Peer: '10.0.0.2',
  User: 'admin',
  ApiKey: '',
  Direction: 'push',
  LocalNamespace: 'admin',
  LocalName: 'x',
  LocalBranchName: '',
  RemoteNamespace: 'admin',
  RemoteName: 'x',
  RemoteBranchName: '',
  FilesystemId: '11111111-1111-4111-8111-111111111111',
  InitiatorNodeId: node,
  PeerNodeId: 'peer',
  StartingCommit: '',
  TargetCommit: '',
  Index: 1,
  Total: 1,
  Status: 'pushing',
  NanosecondsElapsed: 0,
  Size: 0,
  Sent: 0,
  Message: '',
  Error: null,
  owner: '00000000-0000-0000-0000-000000000000',
});

test('at start a node ends only its own running transfers; another node’s record is left as it is', async () => {
  const store = await MemoryStore.open();
  try {
    await store.put(`${TRANSFERS_PREFIX}mine`, JSON.stringify(record('mine', 'node-a')));
    const theirs = JSON.stringify(record('theirs', 'node-b'));
    await store.put(`${TRANSFERS_PREFIX}theirs`, theirs);
    const records = new TransferRecords(store, SILENT_LOGGER, 'node-a');
    await records.load();
    const admin = '00000000-0000-0000-0000-000000000000';
    assert.equal((await records.get('mine', admin, true)).Status, 'error');
    assert.equal((await records.get('mine', admin, true)).Message, INTERRUPTED_MESSAGE);
    assert.equal((await records.get('theirs', admin, true)).Status, 'pushing');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await store.get(`${TRANSFERS_PREFIX}theirs`))?.value, theirs, 'the store keeps the other node’s record');
    assert.equal(JSON.parse((await store.get(`${TRANSFERS_PREFIX}mine`))!.value).Status, 'error');
  } finally {
    await store.close();
  }
});

test('GetTransfer on another node: the record of a transfer another node runs is read from the store, current', async () => {
  const store = await MemoryStore.open();
  try {
    const admin = '00000000-0000-0000-0000-000000000000';
    const running = new TransferRecords(store, SILENT_LOGGER, 'node-a');
    const elsewhere = new TransferRecords(store, SILENT_LOGGER, 'node-b');
    await elsewhere.load();
    running.create(record('moving', 'node-a'), admin);
    for (let i = 0; i < 20; i++) running.update('moving', { Sent: i }); // progress, at most one write a second
    running.update('moving', { Status: 'finished', Sent: 20 }, true);
    await new Promise((r) => setTimeout(r, 50));
    const seen = await elsewhere.get('moving', admin, true);
    assert.equal(seen.Status, 'finished', 'the final status, never overwritten by a progress write still in flight');
    assert.equal(seen.Sent, 20);
    await assert.rejects(elsewhere.get('nope', admin, true), /No such intercluster transfer nope/);
    await assert.rejects(elsewhere.get('moving', 'someone-else', false), /No such intercluster transfer/);
  } finally {
    await store.close();
  }
});
