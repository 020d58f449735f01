import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatStrandedReport, type StrandedReport } from '@dotmesh/rpc/etcd-stranded';
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { newRecoveryId, planEtcdRecovery } from './etcd-recovery.ts';
import { recordedRecovery, strandedReports } from './etcd-recovery-step.ts';

const report = (nodeId: string, raftIndex: number, revision: number, holdsCaKey = false): StrandedReport => ({
  nodeId,
  raftIndex,
  revision,
  clusterId: '120599259228984516',
  holdsCaKey,
  voters: 3,
});

test('planEtcdRecovery: waits for every voter, never while a server serves, and follows a recorded decision', () => {
  const a = report('aaa', 40, 12, true);
  const b = report('bbb', 40, 12);
  const c = report('ccc', 38, 11);
  assert.deepEqual(planEtcdRecovery({ reports: [], anyServerReady: false, recorded: undefined }).kind, 'none');
  const two = planEtcdRecovery({ reports: [a, b], anyServerReady: false, recorded: undefined });
  assert.equal(two.kind, 'none');
  assert.match((two as { why: string }).why, /2 of 3 etcd members reported stranded/);
  // A report's voters may be stale (a member that never restarted since the others joined): the pools count too.
  const stale = [
    { ...a, voters: 1 },
    { ...b, voters: 2 },
  ];
  assert.equal(planEtcdRecovery({ reports: stale, anyServerReady: false, recorded: undefined }).kind, 'recover');
  assert.equal(planEtcdRecovery({ reports: stale, anyServerReady: false, recorded: undefined, pools: 3 }).kind, 'none');
  assert.equal(planEtcdRecovery({ reports: [a, b, c], anyServerReady: false, recorded: undefined, pools: 5 }).kind, 'recover');
  // The same node reporting twice (its pod restarted) counts once.
  assert.equal(planEtcdRecovery({ reports: [a, b, b], anyServerReady: false, recorded: undefined }).kind, 'none');
  assert.equal(planEtcdRecovery({ reports: [a, b, c], anyServerReady: true, recorded: undefined }).kind, 'none');
  assert.deepEqual(planEtcdRecovery({ reports: [a, b, c], anyServerReady: false, recorded: undefined }), {
    kind: 'recover',
    from: 'aaa',
    recorded: false,
  });
  // Recorded: followed whatever the reports say now (even none, even a server serving: the recovered one).
  assert.deepEqual(planEtcdRecovery({ reports: [], anyServerReady: true, recorded: { id: 'r1', from: 'ccc' } }), {
    kind: 'recover',
    from: 'ccc',
    recorded: true,
  });
});

test('planEtcdRecovery: the newest data, the CA holder among equal data, blocked rather than older data', () => {
  // The CA holder stopped first: it lacks the last writes, the others have them.
  const caBehind = [report('aaa', 38, 11, true), report('bbb', 41, 13), report('ccc', 41, 13)];
  const blocked = planEtcdRecovery({ reports: caBehind, anyServerReady: false, recorded: undefined });
  assert.equal(blocked.kind, 'blocked');
  assert.match((blocked as { why: string }).why, /node bbb's \(raft index 41, revision 13\)/);
  // Same revision (the same key-value data), a lower raft index (a leader's empty entry): the CA holder.
  assert.deepEqual(
    planEtcdRecovery({
      reports: [report('aaa', 39, 13, true), report('bbb', 41, 13), report('ccc', 40, 13)],
      anyServerReady: false,
      recorded: undefined,
    }),
    { kind: 'recover', from: 'aaa', recorded: false },
  );
  // Highest raft index first, then revision; among several CA holders with that data, the lowest node id.
  assert.deepEqual(
    planEtcdRecovery({
      reports: [report('zzz', 50, 20, true), report('mmm', 50, 20, true), report('aaa', 49, 19, true)],
      anyServerReady: false,
      recorded: undefined,
    }),
    { kind: 'recover', from: 'mmm', recorded: false },
  );
  // Members of two clusters never make one.
  const other = { ...report('ccc', 90, 90, true), clusterId: '7' };
  assert.equal(
    planEtcdRecovery({
      reports: [report('aaa', 1, 1, true), report('bbb', 1, 1), other],
      anyServerReady: false,
      recorded: undefined,
    }).kind,
    'blocked',
  );
  // A cluster of one voter: its report alone is enough.
  assert.deepEqual(
    planEtcdRecovery({ reports: [{ ...report('aaa', 5, 2, true), voters: 1 }], anyServerReady: false, recorded: undefined }),
    {
      kind: 'recover',
      from: 'aaa',
      recorded: false,
    },
  );
});

test('newRecoveryId: a recovery id the server accepts', () => {
  assert.match(newRecoveryId(Date.UTC(2026, 11, 6)), /^r[a-z0-9]{1,12}$/);
});

test('strandedReports and recordedRecovery: read from the pods’ termination messages and the ConfigMap', () => {
  const r = report('aaa', 40, 12, true);
  const message = formatStrandedReport(r);
  const pod = (state: V1ContainerStatus['state'], lastState: V1ContainerStatus['lastState'], name = 'dotmesh-server'): V1Pod => ({
    status: { containerStatuses: [{ name, state, lastState, image: 'i', imageID: '', ready: false, restartCount: 1 }] },
  });
  assert.deepEqual(
    strandedReports([pod({ waiting: { reason: 'CrashLoopBackOff' } }, { terminated: { exitCode: 1, message } })]),
    [r],
  );
  assert.deepEqual(strandedReports([pod({ terminated: { exitCode: 1, message } }, {})]), [r]);
  assert.deepEqual(
    strandedReports([pod({ terminated: { exitCode: 1, message } }, {}, 'csi-node')]),
    [],
    'the server container only',
  );
  assert.deepEqual(strandedReports([pod({ running: {} }, { terminated: { exitCode: 1, message: 'killed' } })]), []);
  assert.equal(recordedRecovery(undefined), undefined);
  assert.equal(recordedRecovery({ data: { 'existing-pool-only': 'true' } }), undefined);
  assert.deepEqual(recordedRecovery({ data: { 'existing-pool-only': 'true', id: 'r1', from: 'aaa' } }), {
    id: 'r1',
    from: 'aaa',
  });
});
