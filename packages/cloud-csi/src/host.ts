import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CsiError } from '@dotmesh/csi';
import { status as Status } from '@grpc/grpc-js';

const run = promisify(execFile);

/** Runs a host tool; INTERNAL naming the command and its stderr when it fails. */
export async function sh(cmd: string, args: readonly string[]): Promise<string> {
  try {
    return (await run(cmd, [...args], { maxBuffer: 4 * 1024 * 1024 })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new CsiError(Status.INTERNAL, `${cmd} ${args.join(' ')} failed: ${(err.stderr || err.message).trim().slice(0, 500)}`);
  }
}

/** The loop device backing `image` on this host, if one is attached. */
export async function loopOf(image: string): Promise<string | undefined> {
  const out = await sh('losetup', ['--json', '--list', '--output', 'NAME,BACK-FILE']);
  if (out.trim() === '') return undefined;
  const devices = (JSON.parse(out) as { loopdevices: Array<{ name: string; 'back-file': string | null }> }).loopdevices;
  return devices.find((d) => d['back-file'] === image)?.name;
}

/** The loop device of `image`, attached now if none is (the disk appearing on the node). */
export async function attachLoop(image: string): Promise<string> {
  return (await loopOf(image)) ?? (await sh('losetup', ['--find', '--show', image])).trim();
}

/** The filesystem type and source of the mount at `path`, or undefined when `path` is no mount point. */
export async function mountAt(path: string): Promise<{ fstype: string; source: string } | undefined> {
  try {
    const out = (await run('findmnt', ['--noheadings', '--output', 'FSTYPE,SOURCE', '--mountpoint', path])).stdout.trim();
    const [fstype = '', source = ''] = out.split(/\s+/);
    return out === '' ? undefined : { fstype, source };
  } catch {
    return undefined; // findmnt exits 1 when nothing is mounted there
  }
}

/** Whether any mount on this host comes from `device` (a filesystem on it, or a bind of the device node). */
export async function deviceInUse(device: string): Promise<boolean> {
  const base = device.replace(/^\/dev\//, '');
  const out = await sh('findmnt', ['--noheadings', '--list', '--output', 'SOURCE']);
  return out.split('\n').some((s) => s.trim() === device || s.trim().endsWith(`[/${base}]`));
}

/** The filesystem type on `device`, or '' when it holds none. */
export async function filesystemOn(device: string): Promise<string> {
  try {
    return (await run('blkid', ['-o', 'value', '-s', 'TYPE', device])).stdout.trim();
  } catch {
    return ''; // blkid exits 2 when it finds no filesystem
  }
}
