import assert from 'node:assert/strict';
import { mkdir, readdir, readlink, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir } from '@dotmesh/testkit';
import { type InProcessServer, rejectsCode, startInProcess } from './in-process.ts';

/**
 * The `container_mnt` links Procure makes (`<ns>/<dot>`, `<ns>/<dot>@<branch>`) go with their
 * dot: `Delete` removes them, and a delete cut short (a crash after the dot left the index)
 * leaves none behind once the server has started again.
 */
describe('container_mnt links follow their dot', () => {
  let dir: string;
  let s: InProcessServer;
  const mnt = () => join(dir, 'container_mnt');
  const entries = async (ns = 'admin') => (await readdir(join(mnt(), ns)).catch(() => [] as string[])).sort();
  const procure = (name: string) => s.admin.call('Procure', { Namespace: 'admin', Name: name, Subdot: '' });
  const makeDotWithBranch = async (name: string) => {
    await s.admin.call('Create', { Namespace: 'admin', Name: name });
    const [head] = (await s.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: '' })).map((c) => c.Id);
    await s.admin.call('Branch', {
      Namespace: 'admin',
      Name: name,
      SourceBranch: 'master',
      NewBranchName: 'b1',
      SourceCommitId: head!,
    });
    await procure(name);
    await procure(`${name}@b1`);
  };

  before(async () => {
    dir = await makeTempDir('links');
    s = await startInProcess({ dir });
  });
  after(async () => {
    await s?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('Delete removes the dot’s links and only those', async () => {
    await makeDotWithBranch('apples');
    await makeDotWithBranch('apples2');
    assert.deepEqual(await entries(), ['apples', 'apples2', 'apples2@b1', 'apples@b1']);
    await s.admin.call('Delete', { Namespace: 'admin', Name: 'apples' });
    assert.deepEqual(await entries(), ['apples2', 'apples2@b1']);
    await s.admin.call('Delete', { Namespace: 'admin', Name: 'apples2' });
    assert.deepEqual(await readdir(mnt()), [], 'the namespace directory goes with its last link');
  });

  test('a dot made again under the name keeps its own links when the old one’s are removed', async () => {
    await makeDotWithBranch('pears');
    const oldTarget = await readlink(join(mnt(), 'admin', 'pears'));
    await s.admin.call('Delete', { Namespace: 'admin', Name: 'pears' });
    await s.admin.call('Create', { Namespace: 'admin', Name: 'pears' });
    await procure('pears');
    const newTarget = await readlink(join(mnt(), 'admin', 'pears'));
    assert.notEqual(newTarget, oldTarget);
    await s.admin.call('Delete', { Namespace: 'admin', Name: 'pears' });
    assert.deepEqual(await entries(), []);
  });

  test('a delete cut short leaves links that the next start removes; links of live dots stay', async () => {
    await makeDotWithBranch('plums');
    await makeDotWithBranch('kept');
    assert.equal(await s.admin.call('SetDebugFlag', { FlagName: 'delete.after-branches', FlagValue: 'error' }), 'off');
    await rejectsCode(s.admin.call('Delete', { Namespace: 'admin', Name: 'plums' }), 'INJECTED_FAULT');
    assert.deepEqual(await entries(), ['kept', 'kept@b1', 'plums', 'plums@b1'], 'the failed delete left its links');
    // What a crash inside ContainerPaths.point leaves, and a link of a dot that never was.
    await symlink(join(dir, 'nowhere'), join(mnt(), 'admin', 'kept.tmp-123-456'));
    await mkdir(join(mnt(), 'ghosts'));
    await symlink(join(dir, 'nowhere'), join(mnt(), 'ghosts', 'boo'));
    const keptTarget = await readlink(join(mnt(), 'admin', 'kept'));
    s = await s.restart();
    await rejectsCode(s.admin.call('Lookup', { Namespace: 'admin', Name: 'plums', Branch: '' }), 'DOT_NOT_FOUND');
    assert.deepEqual(await entries(), ['kept', 'kept@b1']);
    assert.equal(await readlink(join(mnt(), 'admin', 'kept')), keptTarget);
    assert.deepEqual((await readdir(mnt())).sort(), ['admin']);
  });
});
