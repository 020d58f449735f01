import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveServerConfig } from '@dotmesh/rpc';
import { preflight } from './preflight.ts';

test('preflight names --tls-port when the HTTPS port is taken; 0 is never checked', () => {
  const facts = {
    uid: 0,
    runningPid: null,
    btrfsInKernel: true,
    mkfsBtrfs: '/sbin/mkfs.btrfs',
    freeBytes: 100 * 2 ** 30,
    portsInUse: [32606, 0],
    existingMountIsBtrfs: null,
  };
  const plan = { poolSizeBytes: 2 ** 30, existingMount: null, poolFile: '/p/d', port: 32607, checkPort: 32608 };
  const e = preflight(facts, { ...plan, tlsPort: 32606 });
  assert.equal(e?.code, 'CONFLICT');
  assert.match(e?.hint ?? '', /--tls-port/);
  assert.equal(preflight(facts, { ...plan, tlsPort: 0 }), null);
});

test('the server config: tlsPort defaults to 0, a given certificate needs its key, ports differ', () => {
  const c = resolveServerConfig({ poolDir: '/p' });
  assert.equal(c.tlsPort, 0);
  assert.equal(c.tlsCertFile, null);
  assert.deepEqual(c.tlsSubjectAltNames, []);
  assert.throws(() => resolveServerConfig({ poolDir: '/p', tlsPort: 1, tlsCertFile: '/c.pem' }), /go together/);
  assert.throws(() => resolveServerConfig({ poolDir: '/p', tlsPort: 32607 }), /must differ/);
  assert.throws(() => resolveServerConfig({ poolDir: '/p', tlsSubjectAltNames: ['a b'] }), /host names or IP/);
});
