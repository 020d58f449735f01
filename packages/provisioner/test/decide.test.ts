import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1PersistentVolume, V1PersistentVolumeClaim, V1StorageClass } from '@kubernetes/client-node';
import { decide, NamespaceAllowlist, Provisioner, type ProvisionerApi, shouldDeletePv } from '../src/index.ts';

function pvc(
  o: { name?: string; namespace?: string; annotations?: Record<string, string>; phase?: string } = {},
): V1PersistentVolumeClaim {
  return {
    metadata: { name: o.name ?? 'data', namespace: o.namespace ?? 'apps', uid: 'u-1', annotations: o.annotations ?? {} },
    spec: { storageClassName: 'dotmesh', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '5Gi' } } },
    status: { phase: o.phase ?? 'Pending' },
  };
}

function storageClass(
  parameters: Record<string, string> = {},
  provisioner = 'dotmesh/dotmesh-dynamic-provisioner',
): V1StorageClass {
  return { metadata: { name: 'dotmesh' }, provisioner, parameters, reclaimPolicy: 'Delete' };
}

test('a PVC of the class gets a PV with the FlexVolume source: the class’s namespace (admin by default) and the PVC’s name', () => {
  const d = decide(pvc(), storageClass());
  assert.equal(d.kind, 'provision');
  if (d.kind !== 'provision') return;
  assert.equal(d.pv.metadata?.name, 'pvc-u-1');
  assert.deepEqual(d.pv.spec?.flexVolume, {
    driver: 'dotmesh.io/dm',
    options: { namespace: 'admin', name: 'data', subdot: '__default__' },
  });
  assert.deepEqual(d.pv.spec?.claimRef, {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    namespace: 'apps',
    name: 'data',
    uid: 'u-1',
  });
  assert.deepEqual(d.pv.spec?.capacity, { storage: '5Gi' });
  assert.equal(d.pv.spec?.persistentVolumeReclaimPolicy, 'Delete');
  assert.equal(d.pv.spec?.storageClassName, 'dotmesh');
  assert.equal(d.pv.metadata?.annotations?.['pv.kubernetes.io/provisioned-by'], 'dotmesh/dotmesh-dynamic-provisioner');

  const withClassNs = decide(pvc(), storageClass({ dotmeshNamespace: 'team' }));
  assert.equal(withClassNs.kind === 'provision' && withClassNs.pv.spec?.flexVolume?.options?.namespace, 'team');
});

test('annotations name the dot, its subdot and (allowed) namespace', () => {
  const d = decide(
    pvc({ annotations: { dotmeshNamespace: 'alice', dotmeshName: 'shared', dotmeshSubdot: 'db' } }),
    storageClass({ dotmeshNamespaceAllowlist: 'apps=alice,bob; other=carol' }),
  );
  assert.equal(d.kind, 'provision');
  assert.deepEqual(d.kind === 'provision' && d.pv.spec?.flexVolume?.options, {
    namespace: 'alice',
    name: 'shared',
    subdot: 'db',
  });
  const root = decide(pvc({ annotations: { dotmeshSubdot: '__root__' } }), storageClass());
  assert.equal(root.kind === 'provision' && root.pv.spec?.flexVolume?.options?.subdot, '__root__');
  const wildcard = decide(
    pvc({ annotations: { dotmeshNamespace: 'shared' } }),
    storageClass({ dotmeshNamespaceAllowlist: '*=shared' }),
  );
  assert.equal(wildcard.kind, 'provision');
});

test('a dotmesh namespace outside the allowlist is refused (default: only the class’s own)', () => {
  const outside = decide(pvc({ annotations: { dotmeshNamespace: 'alice' } }), storageClass());
  assert.equal(outside.kind, 'refuse');
  assert.match(outside.kind === 'refuse' ? outside.message : '', /Kubernetes namespace apps may not use dotmesh namespace alice/);
  const otherK8sNs = decide(
    pvc({ namespace: 'intruder', annotations: { dotmeshNamespace: 'alice' } }),
    storageClass({ dotmeshNamespaceAllowlist: 'apps=alice' }),
  );
  assert.equal(otherK8sNs.kind, 'refuse');
});

test('hostile names and bad class parameters are refused with a message naming them', () => {
  const cases: [V1PersistentVolumeClaim, V1StorageClass, RegExp][] = [
    [pvc({ annotations: { dotmeshName: '../../etc' } }), storageClass(), /invalid dot name/],
    [pvc({ annotations: { dotmeshName: 'a"b' } }), storageClass(), /invalid dot name/],
    [pvc({ annotations: { dotmeshSubdot: 'x/y' } }), storageClass(), /invalid subdot name/],
    [pvc({ annotations: { dotmeshNamespace: 'a b' } }), storageClass(), /invalid namespace name/],
    [pvc({ name: 'x'.repeat(65) }), storageClass(), /invalid dot name/],
    [pvc(), storageClass({ dotmeshNamespace: 'bad/ns' }), /invalid namespace name/],
    [pvc(), storageClass({ dotmeshNamespaceAllowlist: 'apps' }), /dotmeshNamespaceAllowlist: bad entry "apps"/],
    [pvc(), storageClass({ dotmeshNamespaceAllowlist: 'Apps=x' }), /bad entry/],
    [pvc(), storageClass({ dotmeshNamespaceAllowlist: 'apps=x;y' }), /bad entry "y"/],
    [pvc(), storageClass({ dotmeshNamespaceAllowlist: 'apps=a b' }), /invalid namespace name "a b"/],
    [pvc(), storageClass({ dotmeshNamespaceAllowlist: 'apps=../x' }), /invalid namespace name/],
    [pvc(), storageClass({ dotmeshnamespace: 'admin' }), /unknown parameter "dotmeshnamespace"/],
  ];
  for (const [claim, sc, message] of cases) {
    const d = decide(claim, sc);
    assert.equal(d.kind, 'refuse', String(message));
    assert.match(d.kind === 'refuse' ? d.message : '', message);
  }
  const block = pvc();
  block.spec!.volumeMode = 'Block';
  assert.equal(decide(block, storageClass()).kind, 'refuse');
});

test('PVCs that are bound, not pending, or of another provisioner’s class are left alone', () => {
  assert.equal(decide(pvc({ phase: 'Bound' }), storageClass()).kind, 'ignore');
  assert.equal(decide(pvc(), storageClass({}, 'csi.dotmesh.io')).kind, 'ignore');
  assert.equal(decide(pvc(), undefined).kind, 'ignore');
  const named = pvc();
  named.spec!.volumeName = 'pv-1';
  assert.equal(decide(named, storageClass()).kind, 'ignore');
});

test('the allowlist parser: entries, wildcard, spaces and newlines', () => {
  const list = NamespaceAllowlist.parse(' apps = alice , bob \n ops=carol;*=shared ');
  assert.ok(list.allows('apps', 'bob'));
  assert.ok(list.allows('ops', 'carol'));
  assert.ok(list.allows('anything', 'shared'));
  assert.equal(list.allows('ops', 'alice'), false);
  assert.equal(NamespaceAllowlist.parse(undefined).allows('apps', 'alice'), false);
  assert.equal(NamespaceAllowlist.parse('').allows('apps', 'alice'), false);
});

test('only released PVs of this provisioner with reclaim policy Delete are removed', () => {
  const pv = (phase: string, policy: string, by = 'dotmesh/dotmesh-dynamic-provisioner'): V1PersistentVolume => ({
    metadata: { name: 'pvc-1', annotations: { 'pv.kubernetes.io/provisioned-by': by } },
    spec: { persistentVolumeReclaimPolicy: policy },
    status: { phase },
  });
  assert.equal(shouldDeletePv(pv('Released', 'Delete')), true);
  assert.equal(shouldDeletePv(pv('Bound', 'Delete')), false);
  assert.equal(shouldDeletePv(pv('Released', 'Retain')), false);
  assert.equal(shouldDeletePv(pv('Released', 'Delete', 'someone-else')), false);
});

test('the provisioner creates the PV once, reports a refusal once per message, and reports again when it changes', async () => {
  const calls: string[] = [];
  const made = new Set<string>();
  let classParams: Record<string, string> = {};
  const api: ProvisionerApi = {
    storageClass: async () => storageClass(classParams),
    createPv: async (pv) => {
      const name = pv.metadata?.name ?? '';
      calls.push(`create ${name}`);
      if (made.has(name)) return false;
      made.add(name);
      return true;
    },
    deletePv: async (name) => {
      calls.push(`delete ${name}`);
    },
    event: async (_pvc, type, reason, message) => {
      calls.push(`event ${type} ${reason} ${message.split(':')[0]}`);
    },
  };
  const p = new Provisioner({ api, log: () => {} });
  const bad = pvc({ annotations: { dotmeshName: 'no/way' } });
  await p.claim(bad);
  await p.claim(bad);
  assert.deepEqual(calls, ['event Warning ProvisioningFailed PVC apps/data']);
  classParams = { dotmeshNamespace: 'x y' };
  await p.claim(bad);
  assert.deepEqual(calls.slice(1), ['event Warning ProvisioningFailed PVC apps/data'], 'a new refusal is reported');
  classParams = {};
  calls.length = 0;
  await p.claim(pvc());
  await p.claim(pvc());
  assert.deepEqual(calls, [
    'create pvc-u-1',
    'event Normal ProvisioningSucceeded Successfully provisioned volume pvc-u-1 for dot admin/data',
    'create pvc-u-1',
  ]);
  calls.length = 0;
  await p.volume({
    metadata: { name: 'pvc-u-1', annotations: { 'pv.kubernetes.io/provisioned-by': 'dotmesh/dotmesh-dynamic-provisioner' } },
    spec: { persistentVolumeReclaimPolicy: 'Delete' },
    status: { phase: 'Released' },
  });
  assert.deepEqual(calls, ['delete pvc-u-1']);
});

test('overlapping passes over one refused PVC report it once', async () => {
  const events: string[] = [];
  const api: ProvisionerApi = {
    storageClass: async () => storageClass(),
    createPv: async () => true,
    deletePv: async () => {},
    event: async (_pvc, _type, reason) => {
      await new Promise((r) => setTimeout(r, 20));
      events.push(reason);
    },
  };
  const p = new Provisioner({ api, log: () => {} });
  const bad = pvc({ annotations: { dotmeshName: 'no/way' } });
  await Promise.all([p.claim(bad), p.claim(bad), p.claim(bad)]);
  assert.deepEqual(events, ['ProvisioningFailed']);
});
