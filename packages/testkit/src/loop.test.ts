import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireCapabilities } from './capabilities.ts';
import { Cleanup } from './cleanup.ts';
import {
  deepestFirst,
  detachLoopDevicesBackedBy,
  detachLoopDevicesUnder,
  isUnder,
  listLoopDevicesFor,
  majorMinor,
  mountsUnder,
  parseLosetupAssociated,
  parseLosetupJson,
  parseMountInfo,
  unmountUnder,
} from './loop.ts';
import { runCommand } from './process.ts';
import { makeTempDir } from './tmp.ts';

test('isUnder: string prefixes, and a trailing slash for a directory boundary', () => {
  assert.equal(isUnder('/tmp/dmtest-42/pool.img', '/tmp/dmtest-'), true);
  assert.equal(isUnder('/tmp/x', '/tmp/x/'), true);
  assert.equal(isUnder('/tmp/x/a', '/tmp/x/'), true);
  assert.equal(isUnder('/tmp/xy', '/tmp/x/'), false);
  assert.equal(isUnder('/var/lib/dotmesh', '/tmp/dmtest-'), false);
  assert.throws(() => isUnder('/', ''), /empty path prefix/);
});

test('parseLosetupJson: devices, deleted backing files, empty output', () => {
  const text = JSON.stringify({
    loopdevices: [
      { name: '/dev/loop0', 'back-file': '/tmp/dmtest-1/pool.img', ro: false },
      { name: '/dev/loop1', 'back-file': '/tmp/dmtest-1/old.img (deleted)' },
      { name: '/dev/loop2', 'back-file': null },
    ],
  });
  assert.deepEqual(parseLosetupJson(text), [
    { name: '/dev/loop0', backFile: '/tmp/dmtest-1/pool.img', deleted: false },
    { name: '/dev/loop1', backFile: '/tmp/dmtest-1/old.img', deleted: true },
  ]);
  assert.deepEqual(parseLosetupJson(''), []);
  const withInode = JSON.stringify({
    loopdevices: [
      { name: '/dev/loop3', 'back-file': '/dotmesh_data (deleted)', 'back-ino': 11109784, 'back-maj:min': '  254:0 ' },
    ],
  });
  assert.deepEqual(parseLosetupJson(withInode), [
    { name: '/dev/loop3', backFile: '/dotmesh_data', deleted: true, backIno: 11109784, backDev: '254:0' },
  ]);
});

test('majorMinor decodes Linux device numbers', () => {
  assert.equal(majorMinor(65024), '254:0');
  assert.equal(majorMinor(2049), '8:1');
  assert.equal(majorMinor(5 | (259 << 8) | (256 << 12)), '259:261'); // minor 261 = 0x105: its high bits above the major
});

test('parseMountInfo: unescapes mount points, finds fs type after the separator', () => {
  const info = [
    '36 25 0:32 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
    '90 36 7:0 / /tmp/dmtest-1/with\\040space rw,noatime shared:50 master:2 - btrfs /dev/loop0 rw,space_cache=v2',
    '91 90 0:50 / /tmp/dmtest-1/with\\040space/sub rw - tmpfs tmpfs rw',
  ].join('\n');
  const m = parseMountInfo(info);
  assert.deepEqual(m[1], { mountPoint: '/tmp/dmtest-1/with space', fsType: 'btrfs', source: '/dev/loop0' });
  assert.deepEqual(mountsUnder('/tmp/dmtest-', info), ['/tmp/dmtest-1/with space/sub', '/tmp/dmtest-1/with space']);
});

test('deepestFirst puts children before parents', () => {
  assert.deepEqual(deepestFirst(['/a', '/a/b/c', '/a/b', '/z/y']), ['/a/b/c', '/a/b', '/z/y', '/a']);
});

test('unmountUnder and detachLoopDevicesUnder remove real mounts and loop devices', async (t) => {
  if (!requireCapabilities(t, ['root', 'losetup'])) return;
  const c = new Cleanup();
  t.after(() => c.run());
  const dir = await makeTempDir('loop', c);
  const img = join(dir, 'disk.img');
  await writeFile(img, Buffer.alloc(1024 * 1024));
  const { stdout } = await runCommand('losetup', ['-f', '--show', img]);
  const dev = stdout.trim();
  c.add(() => runCommand('losetup', ['-d', dev]).catch(() => undefined), 'losetup -d fallback');
  const found = await listLoopDevicesFor(img);
  assert.deepEqual(
    found.map((d) => d.name),
    [dev],
  );

  const outer = join(dir, 'mnt');
  const inner = join(outer, 'inner');
  await mkdir(outer);
  await runCommand('mount', ['-t', 'tmpfs', 'tmpfs', outer]);
  await mkdir(inner);
  await runCommand('mount', ['-t', 'tmpfs', 'tmpfs', inner]);
  await runCommand('mount', ['-t', 'tmpfs', 'tmpfs', inner]); // stacked on the same point
  assert.equal(mountsUnder(`${dir}/`).length, 3);

  const unmounted = await unmountUnder(`${dir}/`);
  assert.deepEqual(unmounted, [inner, inner, outer]);
  assert.deepEqual(mountsUnder(`${dir}/`), []);

  const detached = await detachLoopDevicesUnder(`${dir}/`);
  assert.deepEqual(
    detached.map((d) => d.name),
    [dev],
  );
  assert.deepEqual(await listLoopDevicesFor(`${dir}/`), []);
});

test('parseLosetupAssociated: the devices of `losetup -j` lines', () => {
  assert.deepEqual(
    parseLosetupAssociated('/dev/loop4: [65024]:9981053 (/f.img)\n/dev/loop12: [65024]:9981053 (/x (deleted))\n'),
    ['/dev/loop4', '/dev/loop12'],
  );
  assert.deepEqual(parseLosetupAssociated(''), []);
});

test('detachLoopDevicesBackedBy finds a device attached through a bind mount of another mount namespace', async (t) => {
  if (!requireCapabilities(t, ['root', 'losetup'])) return;
  const c = new Cleanup();
  t.after(() => c.run());
  const dir = await makeTempDir('loop-ns', c);
  const src = join(dir, 'src');
  const target = join(dir, 'target');
  await mkdir(src);
  await mkdir(target);
  const img = join(src, 'disk.img');
  await writeFile(img, Buffer.alloc(1024 * 1024));
  const attachInNamespace = async () => {
    const script = 'mount --bind "$1" "$2" && losetup -f --show "$2/disk.img"';
    const { stdout } = await runCommand('unshare', [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      script,
      'sh',
      src,
      target,
    ]);
    const dev = stdout.trim();
    c.add(() => runCommand('losetup', ['-d', dev]).catch(() => undefined), 'losetup -d fallback');
    return dev;
  };
  const dev = await attachInNamespace();
  assert.deepEqual(await listLoopDevicesFor(`${dir}/`), [], 'its back-file names a path of the other namespace');
  assert.deepEqual(await detachLoopDevicesBackedBy([img, join(dir, 'missing.img')]), [dev]);
  assert.equal(parseLosetupAssociated((await runCommand('losetup', ['-j', img])).stdout).length, 0);

  const again = await attachInNamespace();
  const detached = await detachLoopDevicesUnder(`${dir}/`);
  assert.deepEqual(
    detached.map((d) => d.name),
    [again],
    'a directory prefix also finds the devices of the files inside it by inode',
  );
  assert.equal(parseLosetupAssociated((await runCommand('losetup', ['-j', img])).stdout).length, 0);
});
