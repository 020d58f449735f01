import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import {
  checkGroupParameters,
  checkMemberIds,
  type GroupVolume,
  MAX_GROUP_VOLUMES,
  oneBranch,
  parseGroupVolumeIds,
} from '../src/group-members.ts';
import { GROUP_KIND, groupMessage, groupRecordOf, memberRecords, parseMembers } from '../src/group-records.ts';
import { CsiError } from '../src/grpc-errors.ts';
import { groupSnapshotId, parseGroupSnapshotId, parseSnapshotId, parseVolumeId, volumeId } from '../src/ids.ts';
import { META } from '../src/records.ts';

const DOT = 'abcdef12-2222-4333-8444-555555555555';
const DOT2 = 'abcdef12-2222-4333-8444-666666666666';
const BRANCH = '66666666-7777-4888-9999-aaaaaaaaaaaa';
const BRANCH2 = '66666666-7777-4888-9999-bbbbbbbbbbbb';

/** `fn` throws a CsiError with `code` whose message matches every one of `parts`. */
function throwsCsi(fn: () => unknown, code: Status, ...parts: RegExp[]) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CsiError, String(e));
    assert.equal(e.code, code, e.message);
    for (const p of parts) assert.match(e.message, p);
    return true;
  });
}

describe('group snapshot ids', () => {
  test('round trip; anything else is not a group id', () => {
    const g = { namespace: 'alice', dotId: DOT, branchId: BRANCH, commitId: 'csig-0123' };
    assert.equal(groupSnapshotId(g), `g1/alice/${DOT}/${BRANCH}/csig-0123`);
    assert.deepEqual(parseGroupSnapshotId(groupSnapshotId(g)), g);
    for (const bad of [
      '',
      'g1',
      `g1/alice/${DOT}/${BRANCH}`,
      `g1/alice/${DOT}/${BRANCH}/c/extra`,
      `g1/../${DOT}/${BRANCH}/c`,
      `g1/alice/${DOT}/${BRANCH}/..`,
      `s1/alice/${DOT}/${BRANCH}/c`,
      `g2/alice/${DOT}/${BRANCH}/c`,
      `g1/alice/${DOT}/not-a-uuid/c`,
    ]) {
      assert.equal(parseGroupSnapshotId(bad), undefined, bad);
    }
    assert.equal(parseSnapshotId(groupSnapshotId(g)), undefined, 'a group id is no snapshot id');
  });
});

describe('which volumes one group takes', () => {
  const vol = (dotId: string, branchId: string, subdot: string, dot = 'admin/shared', branch = ''): GroupVolume => {
    const ref = { namespace: 'admin', dotId, branchId, subdot };
    return { id: volumeId(ref), ref, dot, branch };
  };

  test('subdots of one branch: their subdots in order', () => {
    const g = oneBranch([vol(DOT, BRANCH, 'default-db'), vol(DOT, BRANCH, 'default-logs')]);
    assert.deepEqual(g, { namespace: 'admin', dotId: DOT, branchId: BRANCH, subdots: ['default-db', 'default-logs'] });
    assert.deepEqual(oneBranch([vol(DOT, BRANCH, '')]).subdots, [''], 'a plain volume alone: its branch');
  });

  test('two dots: INVALID_ARGUMENT naming each volume and dot, and what to do', () => {
    const a = vol(DOT, BRANCH, 'default-db', 'admin/shop');
    const b = vol(DOT2, BRANCH2, '', 'admin/csi-0123', 'csi-0123');
    throwsCsi(
      () => oneBranch([a, b]),
      Status.INVALID_ARGUMENT,
      /different dots/,
      new RegExp(`${a.id} \\(dot admin/shop\\)`),
      new RegExp(`${b.id} \\(dot admin/csi-0123, branch csi-0123\\)`),
      /dotmeshDot/,
      /VolumeSnapshot of each volume/,
    );
  });

  test('two branches of one dot: INVALID_ARGUMENT saying so', () => {
    throwsCsi(
      () => oneBranch([vol(DOT, BRANCH, 'x'), vol(DOT, BRANCH2, '', 'admin/shared', 'csi-1')]),
      Status.INVALID_ARGUMENT,
      /different branches of dot admin\/shared/,
    );
  });

  test('the ids asked: required, distinct, at most MAX_GROUP_VOLUMES, each an id of the driver', () => {
    const a = volumeId({ namespace: 'admin', dotId: DOT, branchId: BRANCH, subdot: 'a' });
    assert.deepEqual(parseGroupVolumeIds([a]), [{ id: a, ref: parseVolumeId(a) }]);
    throwsCsi(() => parseGroupVolumeIds([]), Status.INVALID_ARGUMENT, /source_volume_ids is required/);
    throwsCsi(() => parseGroupVolumeIds(undefined), Status.INVALID_ARGUMENT);
    throwsCsi(() => parseGroupVolumeIds([a, a]), Status.INVALID_ARGUMENT, /named twice/);
    throwsCsi(() => parseGroupVolumeIds([a, 'v1/../x']), Status.NOT_FOUND, /no volume v1\/\.\.\/x/);
    const many = Array.from({ length: MAX_GROUP_VOLUMES + 1 }, (_, i) =>
      volumeId({ namespace: 'admin', dotId: DOT, branchId: BRANCH, subdot: `s${i}` }),
    );
    throwsCsi(() => parseGroupVolumeIds(many), Status.INVALID_ARGUMENT, /at most/);
  });

  test('class parameters: only the sidecar’s csi.storage.k8s.io/ keys', () => {
    checkGroupParameters(undefined);
    checkGroupParameters({ 'csi.storage.k8s.io/group-snapshotter-secret-name': 'dotmesh' });
    throwsCsi(
      () => checkGroupParameters({ colour: 'red' }),
      Status.INVALID_ARGUMENT,
      /unknown VolumeGroupSnapshotClass parameter "colour"/,
    );
  });

  test('member ids of a Get or Delete: none said, or exactly the group’s', () => {
    checkMemberIds('Get', 'g', ['s1', 's2'], undefined);
    checkMemberIds('Get', 'g', ['s1', 's2'], []);
    checkMemberIds('Get', 'g', ['s1', 's2'], ['s2', 's1']);
    throwsCsi(() => checkMemberIds('Get', 'g', ['s1', 's2'], ['s1']), Status.INVALID_ARGUMENT, /not the snapshots of group g/);
    throwsCsi(() => checkMemberIds('Get', 'g', ['s1'], ['s1', 's3']), Status.INVALID_ARGUMENT);
    throwsCsi(() => checkMemberIds('Get', 'g', ['s1', 's2'], ['s1', 's1']), Status.INVALID_ARGUMENT);
  });
});

describe('group records in commit metadata', () => {
  const commit = (members: string | undefined, kind = GROUP_KIND) => ({
    Id: 'csig-abc',
    FilesystemId: BRANCH,
    DotId: DOT,
    Namespace: 'admin',
    Metadata: {
      [META.kind]: kind,
      ...(members === undefined ? {} : { [META.members]: members }),
      timestamp: '1700000000123456789',
    },
  });

  test('csi-members: a JSON array of distinct subdot names ("" for a branch’s own volume)', () => {
    assert.deepEqual(parseMembers('["a","b-1"]'), ['a', 'b-1']);
    assert.deepEqual(parseMembers('[""]'), ['']);
    for (const bad of [undefined, '', 'a,b', '[]', '["a","a"]', '["../x"]', '[1]', '{"a":1}', `["${'x'.repeat(65)}"]`]) {
      assert.equal(parseMembers(bad), undefined, String(bad));
    }
  });

  test('a group commit: its members are snapshots of that commit, one per subdot, naming the group', () => {
    const g = groupRecordOf(commit('["default-db","default-logs"]'));
    assert.ok(g);
    assert.equal(g.id, `g1/admin/${DOT}/${BRANCH}/csig-abc`);
    const members = memberRecords(g);
    assert.deepEqual(
      members.map((m) => [m.id, m.sourceVolumeId, m.groupId]),
      [
        [`s1/admin/${DOT}/${BRANCH}/csig-abc/default-db`, `v1/admin/${DOT}/${BRANCH}/default-db`, g.id],
        [`s1/admin/${DOT}/${BRANCH}/csig-abc/default-logs`, `v1/admin/${DOT}/${BRANCH}/default-logs`, g.id],
      ],
    );
    const m = groupMessage(g);
    assert.equal(m.ready_to_use, true);
    assert.deepEqual(m.creation_time, { seconds: 1700000000, nanos: 123456789 });
    assert.deepEqual(
      m.snapshots.map((s) => [s.group_snapshot_id, s.ready_to_use, s.creation_time.seconds]),
      [
        [g.id, true, 1700000000],
        [g.id, true, 1700000000],
      ],
    );
    assert.equal(memberRecords(groupRecordOf(commit('[""]'))!)[0]!.sourceVolumeId, `v1/admin/${DOT}/${BRANCH}`);
  });

  test('other commits, or a group commit with bad members, are no group', () => {
    assert.equal(groupRecordOf(commit('["a"]', 'snapshot')), undefined);
    assert.equal(groupRecordOf(commit(undefined)), undefined);
    assert.equal(groupRecordOf(commit('not json')), undefined);
  });
});
