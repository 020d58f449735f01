import { readFile } from 'node:fs/promises';
import { type MountEntry, parseMountInfo, visibleMounts } from '@dotmesh/core';

/** The mounts this process can reach by path, in mountinfo order. */
export async function readMounts(): Promise<MountEntry[]> {
  return visibleMounts(parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8')));
}
