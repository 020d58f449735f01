import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { MemberClients } from './member-clients.ts';

/** Stand-ins that record their endpoint and whether they were closed (no call is made on them). */
function recorder() {
  const made: Array<{ endpoint: string; closed: boolean }> = [];
  const make = (endpoint: string) => {
    const entry = { endpoint, closed: false };
    made.push(entry);
    return { close: () => (entry.closed = true) } as unknown as Etcd3;
  };
  return { made, make };
}

test('MemberClients: the endpoint that answered last comes first, the others follow in turn', () => {
  const { make } = recorder();
  const members = new MemberClients(['a', 'b', 'c'], make);
  assert.deepEqual(members.order(), ['a', 'b', 'c']);
  members.answered('b');
  assert.deepEqual(members.order(), ['b', 'c', 'a']);
  members.setEndpoints(['c', 'a']);
  assert.deepEqual(members.order(), ['c', 'a'], 'a preferred endpoint that left is forgotten');
});

test('MemberClients: one client per endpoint, made once; a removed endpoint’s closes once its calls had their time; close() closes all', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { made, make } = recorder();
  const members = new MemberClients(['a', 'b', 'd'], make);
  assert.equal(members.client('a'), members.client('a'));
  members.client('b');
  members.client('d');
  assert.deepEqual(
    made.map((m) => m.endpoint),
    ['a', 'b', 'd'],
  );
  members.setEndpoints(['b', 'c']);
  assert.deepEqual(
    made.map((m) => m.closed),
    [false, false, false],
    'calls under way on a removed member go on',
  );
  t.mock.timers.tick(30_000);
  assert.deepEqual(
    made.map((m) => m.closed),
    [true, false, true],
  );
  members.setEndpoints(['c']);
  members.close();
  assert.deepEqual(
    made.map((m) => m.closed),
    [true, true, true],
    'close() closes the retired clients too',
  );
  assert.throws(() => members.client('b'), /closed/);
});

test('MemberClients: an endpoint that missed its answer stops coming first; one that did not come first changes nothing', () => {
  const { make } = recorder();
  const members = new MemberClients(['a', 'b', 'c'], make);
  members.missed('a');
  assert.deepEqual(members.order(), ['b', 'c', 'a']);
  members.missed('a');
  assert.deepEqual(members.order(), ['b', 'c', 'a'], 'a member that is not first stays where it is');
  members.missed('c');
  assert.deepEqual(members.order(), ['b', 'c', 'a']);
  members.missed('b');
  assert.deepEqual(members.order(), ['c', 'a', 'b']);
});
