import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { parseMountInfo } from '@dotmesh/core';

/**
 * The host's mount table through util-linux `mount`/`umount` (found on PATH, as the kubelet
 * runs its drivers) and /proc/self/mountinfo. Node has no mount(2): these are the only programs
 * the driver runs.
 */
export async function bindMount(source: string, target: string, readOnly: boolean): Promise<void> {
  await run('mount', ['--bind', source, target]);
  // A bind mount takes its read-only flag only on a remount.
  if (readOnly) await run('mount', ['-o', 'remount,bind,ro', target]);
}

export async function unmountPath(target: string): Promise<void> {
  await run('umount', [target]);
}

export async function isMountPoint(target: string): Promise<boolean> {
  const mounts = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  return mounts.some((m) => m.mountPoint === target);
}

function run(program: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(program, args, { timeout: 60_000 }, (error, _stdout, stderr) => {
      if (!error) resolve();
      else reject(new Error(`${program} ${args.join(' ')}: ${String(stderr).trim() || error.message}`));
    });
  });
}
