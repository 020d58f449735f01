import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMountInfo, visibleMounts } from './mountinfo.ts';

const line = (id: number, parent: number, point: string, fs: string, source: string) =>
  `${id} ${parent} 0:1 / ${point} rw,noatime shared:1 - ${fs} ${source} rw`;

test('visibleMounts drops a pool mount hidden by a directory bind-mounted over /var/lib', () => {
  // The host's pool at /var/lib/dotmesh/mnt, then (in a test's own mount namespace) a test
  // directory bound over /var/lib: the old pool mount is still listed but nobody reaches it.
  const info = [
    line(1, 0, '/', 'ext4', '/dev/sda1'),
    line(2, 1, '/var/lib/dotmesh/mnt', 'btrfs', '/dev/loop3'),
    line(3, 1, '/proc', 'proc', 'proc'),
    line(4, 1, '/var/lib', 'ext4', '/dev/sda1'),
    line(5, 4, '/var/lib/dotmesh/mnt', 'btrfs', '/dev/loop4'),
  ].join('\n');
  const visible = visibleMounts(parseMountInfo(info));
  assert.deepEqual(
    visible.map((m) => [m.mountPoint, m.source]),
    [
      ['/', '/dev/sda1'],
      ['/proc', 'proc'],
      ['/var/lib', '/dev/sda1'],
      ['/var/lib/dotmesh/mnt', '/dev/loop4'],
    ],
  );
});

test('visibleMounts keeps mounts below a mount, and only the top one of a stack', () => {
  const info = [
    line(1, 0, '/', 'ext4', '/dev/sda1'),
    line(2, 1, '/mnt', 'btrfs', '/dev/loop1'),
    line(3, 2, '/mnt/sub', 'tmpfs', 'tmpfs'),
    line(4, 2, '/mnt', 'btrfs', '/dev/loop2'),
    line(5, 1, '/srv', 'tmpfs', 'a'),
    line(6, 1, '/srv', 'tmpfs', 'b'),
  ].join('\n');
  const visible = visibleMounts(parseMountInfo(info)).map((m) => m.source);
  // loop1 is under loop2 (stacked on it), so its child /mnt/sub is hidden too; of two mounts on
  // one parent at one path, the later one is on top.
  assert.deepEqual(visible, ['/dev/sda1', '/dev/loop2', 'b']);
});

test('visibleMounts on this process’s own mountinfo keeps / and every mount point once', async () => {
  const { readFile } = await import('node:fs/promises');
  const visible = visibleMounts(parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8')));
  assert.ok(visible.some((m) => m.mountPoint === '/'));
  const points = visible.map((m) => m.mountPoint);
  assert.equal(new Set(points).size, points.length, 'no mount point twice among visible mounts');
});
