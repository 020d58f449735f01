import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseVolumeId } from '@dotmesh/core';
import { assertRefused } from '@dotmesh/testkit';
import type { V1PersistentVolumeClaim, V1StorageClass } from '@kubernetes/client-node';
import type { DotCommitObject } from './dot-resources.ts';
import {
  CSI_DRIVER,
  classNamespace,
  classSettings,
  DELETION_SECRET_NAME,
  POPULATED_FROM,
  PROVISIONED_BY,
  populatedPv,
  populationPlan,
  wantsPopulation,
} from './populator-spec.ts';

const UID = '0f8e1f9a-4c1b-4a57-9a57-1d2e3f4a5b6c';
const claim = (over: Partial<V1PersistentVolumeClaim['spec']> = {}, phase = 'Pending'): V1PersistentVolumeClaim => ({
  metadata: { name: 'ci-run-7', namespace: 'ci', uid: UID },
  spec: {
    storageClassName: 'dotmesh-csi',
    accessModes: ['ReadWriteOnce'],
    resources: { requests: { storage: '2Gi' } },
    dataSourceRef: { apiGroup: 'dotmesh.io', kind: 'DotCommit', name: 'fixtures' },
    ...over,
  },
  status: { phase },
});
const secretParams = (name: string, namespace = 'dotmesh') =>
  Object.fromEntries(
    ['provisioner', 'controller-publish', 'node-stage', 'node-publish'].flatMap((r) => [
      [`csi.storage.k8s.io/${r}-secret-name`, name],
      [`csi.storage.k8s.io/${r}-secret-namespace`, namespace],
    ]),
  );
const storageClass = (
  parameters: Record<string, string> = secretParams('dotmesh'),
  provisioner = CSI_DRIVER,
): V1StorageClass => ({
  metadata: { name: 'dotmesh-csi' },
  provisioner,
  reclaimPolicy: 'Delete',
  parameters,
});
const dotCommit = (spec: Record<string, unknown>): DotCommitObject => ({ metadata: { name: 'fixtures', namespace: 'ci' }, spec });
const refused = assertRefused;
const plan = (spec: Record<string, unknown>, sc = storageClass(), pvc = claim()) =>
  populationPlan(
    pvc,
    classSettings(sc, 'dotmesh-csi'),
    classNamespace(classSettings(sc, 'dotmesh-csi'), 'admin'),
    dotCommit(spec),
  );

test('the populator serves Pending, unbound PVCs whose dataSourceRef is of dotmesh.io, nothing else', () => {
  assert.equal(wantsPopulation(claim()), true);
  assert.equal(wantsPopulation(claim({}, 'Bound')), false);
  assert.equal(wantsPopulation(claim({ volumeName: 'pv-1' })), false);
  assert.equal(
    wantsPopulation(claim({ dataSourceRef: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 's' } })),
    false,
  );
  assert.equal(wantsPopulation(claim({ dataSourceRef: undefined })), false);
});

test('a DotCommit with a remote: the dot in the class’s namespace, master, the remote dot and branch defaulted', () => {
  assert.deepEqual(plan({ dot: 'fixtures', remote: 'prod' }), {
    claim: { namespace: 'ci', name: 'ci-run-7', uid: UID },
    source: 'ci/fixtures',
    dot: { namespace: 'admin', name: 'fixtures' },
    branch: '',
    pull: { remote: 'prod', remoteDot: 'admin/fixtures', remoteBranch: '' },
    newBranch: `pvc-${UID}`,
  });
  const p = plan({
    dot: 'admin/web',
    branch: 'master',
    commit: 'c-1',
    remote: 'prod',
    remoteDot: 'team/web',
    remoteBranch: 'release',
  });
  assert.equal(p.branch, '');
  assert.equal(p.commit, 'c-1');
  assert.deepEqual(p.pull, { remote: 'prod', remoteDot: 'team/web', remoteBranch: 'release' });
  assert.equal(plan({ dot: 'web', branch: 'feature' }).pull, undefined, 'no remote: a local dot');
});

test('another user’s dot is refused unless the class’s allowlist gives it to the PVC’s namespace', () => {
  refused(() => plan({ dot: 'bob/secrets' }), 'PERMISSION_DENIED', /Kubernetes namespace ci may not use dotmesh namespace bob/);
  const allowing = storageClass({ ...secretParams('dotmesh'), dotmeshNamespaceAllowlist: 'ci=bob; other=carol' });
  assert.deepEqual(plan({ dot: 'bob/secrets' }, allowing).dot, { namespace: 'bob', name: 'secrets' });
  refused(() => plan({ dot: 'carol/x' }, allowing), 'PERMISSION_DENIED', /may not use dotmesh namespace carol/);
  // The class's own namespace: dotmeshNamespace first, else the user of its Secret.
  const teamClass = classSettings(storageClass({ ...secretParams('team-key'), dotmeshNamespace: 'team' }), 'dotmesh-csi');
  assert.equal(classNamespace(teamClass, undefined), 'team');
  assert.equal(classNamespace(classSettings(storageClass(), 'dotmesh-csi'), 'alice'), 'alice');
  refused(
    () => classNamespace(classSettings(storageClass({}), 'dotmesh-csi'), undefined),
    'INVALID_ARGUMENT',
    /names no dotmesh user/,
  );
});

test('hostile or wrong input is refused naming the field: names, missing objects, foreign classes, templates', () => {
  refused(
    () => plan({ dot: '../../etc' }),
    'INVALID_NAME',
    /DotCommit ci\/fixtures: spec\.dot: Volume names must be of the form/,
  );
  refused(() => plan({ dot: 'web', branch: 'a/b' }), 'INVALID_NAME', /spec\.branch: invalid branch name/);
  refused(() => plan({ dot: 'web', commit: '../x' }), 'INVALID_NAME', /spec\.commit: invalid commit name/);
  refused(() => plan({ dot: 'web', remote: 'Not_A_Name' }), 'INVALID_ARGUMENT', /spec\.remote is not an object name/);
  refused(() => plan({ dot: 'web', remoteDot: 'x' }), 'INVALID_ARGUMENT', /need spec\.remote/);
  refused(() => plan({}), 'INVALID_ARGUMENT', /spec\.dot must be a non-empty string/);
  const settings = classSettings(storageClass(), 'dotmesh-csi');
  refused(
    () => populationPlan(claim(), settings, 'admin', undefined),
    'INVALID_ARGUMENT',
    /DotCommit ci\/fixtures does not exist/,
  );
  refused(
    () =>
      populationPlan(
        claim({ dataSourceRef: { apiGroup: 'dotmesh.io', kind: 'DotCommit', name: 'fixtures', namespace: 'prod' } }),
        settings,
        'admin',
        dotCommit({ dot: 'web' }),
      ),
    'INVALID_ARGUMENT',
    /of another namespace \(prod\) cannot be used/,
  );
  refused(
    () =>
      populationPlan(claim({ dataSourceRef: { apiGroup: 'dotmesh.io', kind: 'Dot', name: 'x' } }), settings, 'admin', undefined),
    'INVALID_ARGUMENT',
    /kind "Dot" of dotmesh\.io is not a source/,
  );
  refused(() => classSettings(undefined, 'gone'), 'INVALID_ARGUMENT', /StorageClass gone does not exist/);
  refused(() => classSettings(undefined, undefined), 'INVALID_ARGUMENT', /names no StorageClass/);
  refused(
    () => classSettings(storageClass({}, 'dotmesh/dotmesh-dynamic-provisioner'), 'x'),
    'INVALID_ARGUMENT',
    /not csi\.dotmesh\.io/,
  );
  refused(
    () =>
      classSettings(
        storageClass({ ...secretParams('dotmesh'), 'csi.storage.k8s.io/node-stage-secret-name': `\${pvc.name}` }),
        'x',
      ),
    'INVALID_ARGUMENT',
    /templates such as/,
  );
  refused(
    () => classSettings(storageClass({ dotmeshNamespaceAllowlist: 'Bad Entry' }), 'x'),
    'INVALID_ARGUMENT',
    /dotmeshNamespaceAllowlist: bad entry/,
  );
});

test('the PV: bound to the claim by uid, a volume id of the driver, the class’s Secrets and the deletion annotations', () => {
  const sc = storageClass();
  const settings = classSettings({ ...sc, reclaimPolicy: 'Retain', mountOptions: ['noatime'] }, 'dotmesh-csi');
  const p = plan({ dot: 'web', remote: 'prod' });
  const dotId = '11111111-2222-4333-8444-555555555555';
  const branchId = '66666666-7777-4888-9999-000000000000';
  const pv = populatedPv(p, claim(), settings, { dotId, branchId, commit: 'c-9' });
  assert.equal(pv.metadata?.name, `pvc-${UID}`);
  assert.equal(pv.metadata?.annotations?.[PROVISIONED_BY], 'csi.dotmesh.io');
  assert.equal(pv.metadata?.annotations?.[POPULATED_FROM], 'ci/fixtures@c-9');
  assert.equal(pv.metadata?.annotations?.[DELETION_SECRET_NAME], 'dotmesh');
  assert.deepEqual(pv.spec?.claimRef, {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    namespace: 'ci',
    name: 'ci-run-7',
    uid: UID,
  });
  assert.deepEqual(pv.spec?.capacity, { storage: '2Gi' });
  assert.deepEqual(pv.spec?.accessModes, ['ReadWriteOnce']);
  assert.equal(pv.spec?.persistentVolumeReclaimPolicy, 'Retain');
  assert.deepEqual(pv.spec?.mountOptions, ['noatime']);
  assert.equal(pv.spec?.storageClassName, 'dotmesh-csi');
  assert.equal(pv.spec?.volumeMode, 'Filesystem');
  const csi = pv.spec?.csi;
  assert.equal(csi?.driver, 'csi.dotmesh.io');
  assert.deepEqual(parseVolumeId(csi?.volumeHandle ?? ''), { namespace: 'admin', dotId, branchId, subdot: '' });
  assert.deepEqual(csi?.volumeAttributes, { dotmeshNamespace: 'admin', dotmeshDot: 'web', dotmeshBranch: `pvc-${UID}` });
  for (const ref of [csi?.controllerPublishSecretRef, csi?.nodeStageSecretRef, csi?.nodePublishSecretRef]) {
    assert.deepEqual(ref, { name: 'dotmesh', namespace: 'dotmesh' });
  }
  // A claim asking no size gets 1Gi; a class without Secrets gives none.
  const bare = populatedPv(p, claim({ resources: {} }), classSettings(storageClass({ dotmeshNamespace: 'admin' }), 'x'), {
    dotId,
    branchId,
    commit: 'c-9',
  });
  assert.deepEqual(bare.spec?.capacity, { storage: '1Gi' });
  assert.equal(bare.spec?.csi?.nodeStageSecretRef, undefined);
  assert.equal(bare.metadata?.annotations?.[DELETION_SECRET_NAME], undefined);
});
