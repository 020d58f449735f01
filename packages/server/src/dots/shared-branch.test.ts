import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import type { ContainerUse } from './containers.ts';
import { moveConflict, sharedBranchError, subdotsOverlap } from './shared-branch.ts';

const FOLLOW = '/mnt/admin/shop';
const PIN_EXP = '/mnt/admin/shop@exp';
const use = (name: string, link: string, fsId: string, subdot = '__default__'): ContainerUse => ({
  container: { Name: `/${name}`, Id: `id-${name}` },
  link,
  subdot,
  fsId,
});

test('subdots overlap when equal or when either is the whole dot', () => {
  assert.equal(subdotsOverlap('__default__', '__default__'), true);
  assert.equal(subdotsOverlap('logs', '__root__'), true);
  assert.equal(subdotsOverlap('__root__', 'logs'), true);
  assert.equal(subdotsOverlap('logs', '__default__'), false);
});

test('a follower moving onto the directory a pinned container uses is a conflict naming both', () => {
  const pg = use('pg', FOLLOW, 'master-fs');
  const pinned = use('pgexp', PIN_EXP, 'exp-fs');
  const conflict = moveConflict([pg], [pg, pinned], 'exp-fs');
  assert.deepEqual(conflict, { moving: [pg.container], occupying: [pinned.container] });
  const e = sharedBranchError('admin/shop', 'exp', conflict!);
  assert.ok(isDotmeshError(e));
  assert.equal(e.code, 'IN_USE');
  assert.equal(
    e.message,
    'Cannot switch admin/shop to branch exp: /pg would use the same data as /pgexp, already running on exp',
  );
  assert.deepEqual(e.data, { dot: 'admin/shop', branch: 'exp', moving: [pg.container], occupying: [pinned.container] });
  assert.match(e.hint ?? '', /dm checkout --stop-others exp/);
});

test('only overlapping directories of the target branch conflict', () => {
  const db = use('db', FOLLOW, 'master-fs');
  const logger = use('logger', FOLLOW, 'master-fs', 'logs');
  const pinnedLogs = use('pinnedlogs', PIN_EXP, 'exp-fs', 'logs');
  const elsewhere = use('other', '/mnt/admin/shop@other', 'other-fs');
  // Different subdots of the branch: no shared directory.
  assert.equal(moveConflict([db], [db, pinnedLogs, elsewhere], 'exp-fs'), undefined);
  // The same subdot: only the follower on it is named.
  assert.deepEqual(moveConflict([db, logger], [db, logger, pinnedLogs], 'exp-fs'), {
    moving: [logger.container],
    occupying: [pinnedLogs.container],
  });
  // The whole dot overlaps every subdot.
  const root = use('backup', PIN_EXP, 'exp-fs', '__root__');
  assert.deepEqual(moveConflict([db, logger], [db, logger, root], 'exp-fs'), {
    moving: [db.container, logger.container],
    occupying: [root.container],
  });
});

test('a container is not in conflict with itself, and followers moving together do not conflict', () => {
  const both = use('both', FOLLOW, 'master-fs');
  const bothPinned = { ...use('both', PIN_EXP, 'exp-fs'), container: both.container };
  const web = use('web', FOLLOW, 'master-fs');
  assert.equal(moveConflict([both, web], [both, bothPinned, web], 'exp-fs'), undefined);
  // Nothing moves: nothing to refuse.
  assert.equal(moveConflict([], [use('pgexp', PIN_EXP, 'exp-fs')], 'exp-fs'), undefined);
});
