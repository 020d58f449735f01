import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZONE_KEY, zoneOfNode } from './capabilities.ts';
import { pickZone, sizeFor } from './controller.ts';
import { diskId } from './disks.ts';

const MIB = 1024 * 1024;
const at = (zone: string) => ({ segments: { [ZONE_KEY]: zone } });

test('pickZone: the first preferred zone the cloud has, else a requisite one, else its first zone', () => {
  const zones = ['a', 'b'];
  assert.equal(pickZone(undefined, zones), 'a');
  assert.equal(pickZone({ preferred: [], requisite: [] }, zones), 'a');
  assert.equal(pickZone({ preferred: [at('x'), at('b')], requisite: [at('a'), at('b')] }, zones), 'b');
  assert.equal(pickZone({ preferred: [], requisite: [at('b')] }, zones), 'b');
  assert.throws(() => pickZone({ preferred: [at('x')], requisite: [at('y')] }, zones), { code: 8, message: /no zone/ });
});

test('sizeFor: whole MiB, the default without a request, OUT_OF_RANGE past the limit', () => {
  assert.equal(sizeFor(undefined), 1024 * MIB);
  assert.equal(sizeFor({ required_bytes: 1, limit_bytes: 0 }), MIB);
  assert.equal(sizeFor({ required_bytes: 0, limit_bytes: 10 * MIB }), 10 * MIB);
  assert.throws(() => sizeFor({ required_bytes: MIB + 1, limit_bytes: 2 * MIB - 1 }), { code: 11 });
  assert.throws(() => sizeFor({ required_bytes: -1, limit_bytes: 0 }), { code: 3 });
});

test('disk ids derive from the CSI name; node ids carry the zone', () => {
  assert.equal(diskId('pvc-1'), diskId('pvc-1'));
  assert.notEqual(diskId('pvc-1'), diskId('pvc-2'));
  assert.match(diskId('pvc-1'), /^disk-[0-9a-f]{20}$/);
  assert.equal(zoneOfNode('node-1@zone-a'), 'zone-a');
  assert.equal(zoneOfNode('some-fake-node-id'), undefined);
  assert.equal(zoneOfNode('n@'), undefined);
});
