import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatStrandedReport, parseStrandedReport, type StrandedReport } from './etcd-stranded.ts';

test('parseStrandedReport: a server termination message, validated', () => {
  const good: StrandedReport = {
    nodeId: 'd3adb33f',
    raftIndex: 41,
    revision: 13,
    clusterId: '120599259228984516',
    holdsCaKey: true,
    voters: 3,
  };
  assert.deepEqual(parseStrandedReport(JSON.stringify({ dotmeshEtcdStranded: good })), good);
  assert.deepEqual(parseStrandedReport(formatStrandedReport(good)), good);
  for (const bad of [
    undefined,
    '',
    'the server exited: etcd did not take …',
    '{"dotmeshEtcdStranded": null}',
    JSON.stringify({ dotmeshEtcdStranded: { ...good, nodeId: '../x/y' } }),
    JSON.stringify({ dotmeshEtcdStranded: { ...good, raftIndex: -1 } }),
    JSON.stringify({ dotmeshEtcdStranded: { ...good, revision: 1.5 } }),
    JSON.stringify({ dotmeshEtcdStranded: { ...good, clusterId: 'abc' } }),
    JSON.stringify({ dotmeshEtcdStranded: { ...good, holdsCaKey: 'yes' } }),
    JSON.stringify({ dotmeshEtcdStranded: { ...good, voters: 100 } }),
  ]) {
    assert.equal(parseStrandedReport(bad), undefined, String(bad));
  }
});
