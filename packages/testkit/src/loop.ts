import { existsSync, readFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './process.ts';

/**
 * Finding and removing what tests leave behind: loop devices and mounts. A "prefix" is a plain
 * string prefix of an absolute path: `/tmp/dmtest-` matches `/tmp/dmtest-42/pool.img`; pass a
 * directory with a trailing slash (`/tmp/x/`) to match the directory itself and what is inside
 * it, but not `/tmp/xy`.
 */
export function isUnder(path: string, prefix: string): boolean {
  if (prefix === '') throw new Error('empty path prefix would match everything');
  return path.startsWith(prefix) || `${path}/` === prefix;
}

export interface LoopDevice {
  /** `/dev/loopN` */
  readonly name: string;
  /** Backing file, without the ` (deleted)` suffix losetup adds for an unlinked file. */
  readonly backFile: string;
  readonly deleted: boolean;
  /** The backing file's inode and device (`maj:min`), when losetup was asked for them. */
  readonly backIno?: number;
  readonly backDev?: string;
}

/** Parses `losetup -J` output (empty output means no devices). */
export function parseLosetupJson(text: string): LoopDevice[] {
  if (text.trim() === '') return [];
  const parsed = JSON.parse(text) as { loopdevices?: Array<Record<string, unknown>> };
  const out: LoopDevice[] = [];
  for (const d of parsed.loopdevices ?? []) {
    const name = d.name;
    const raw = d['back-file'];
    if (typeof name !== 'string' || typeof raw !== 'string') continue;
    const deleted = raw.endsWith(' (deleted)');
    const ino = Number(d['back-ino']);
    const dev = d['back-maj:min'];
    out.push({
      name,
      backFile: deleted ? raw.slice(0, -' (deleted)'.length) : raw,
      deleted,
      ...(d['back-ino'] !== undefined && Number.isSafeInteger(ino) ? { backIno: ino } : {}),
      ...(typeof dev === 'string' ? { backDev: dev.trim() } : {}),
    });
  }
  return out;
}

async function listLoopDevices(): Promise<LoopDevice[]> {
  const { stdout } = await runCommand('losetup', ['-J', '--list', '-O', 'NAME,BACK-FILE,BACK-INO,BACK-MAJ:MIN']);
  return parseLosetupJson(stdout);
}

/** Loop devices whose backing file is `fileOrPrefix` or starts with it. */
export async function listLoopDevicesFor(fileOrPrefix: string): Promise<LoopDevice[]> {
  return (await listLoopDevices()).filter((d) => isUnder(d.backFile, fileOrPrefix));
}

/**
 * Loop devices backed by a file under `prefix`: by path, and — when `prefix` names a directory
 * — by the inode of a regular file inside it (reported with that file as `backFile`). A device
 * attached inside a pod or another mount namespace reads as a path of that namespace
 * (`/dotmesh_data`), never as one under `prefix`. The walk does not descend into file systems
 * mounted below the directory.
 */
export async function listLoopDevicesUnder(prefix: string): Promise<LoopDevice[]> {
  const all = await listLoopDevices();
  const found = all.filter((d) => isUnder(d.backFile, prefix));
  const byKey = new Map<string, LoopDevice[]>();
  for (const d of all) {
    if (found.includes(d) || d.backIno === undefined || d.backDev === undefined) continue;
    const key = `${d.backDev}/${d.backIno}`;
    byKey.set(key, [...(byKey.get(key) ?? []), d]);
  }
  if (byKey.size === 0) return found;
  const dir = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const top = await stat(dir).catch(() => undefined);
  if (!top?.isDirectory()) return found;
  // Entries that vanish meanwhile (another process cleaning up) are skipped.
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const path = join(d, entry.name);
      if (!entry.isFile() && !entry.isDirectory()) continue;
      const st = await stat(path).catch(() => undefined);
      if (st?.dev !== top.dev) continue;
      if (entry.isDirectory()) {
        await walk(path);
        continue;
      }
      for (const dev of byKey.get(`${majorMinor(st.dev)}/${st.ino}`) ?? [])
        found.push({ ...dev, backFile: path, deleted: false });
    }
  };
  await walk(dir);
  return found;
}

/** Linux's `maj:min` of a device number (the kernel's new_encode_dev layout). */
export function majorMinor(dev: number): string {
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00);
  return `${major}:${minor}`;
}

/** Detaches every loop device listLoopDevicesUnder(`prefix`) finds; returns them. */
export async function detachLoopDevicesUnder(prefix: string): Promise<LoopDevice[]> {
  const devices = await listLoopDevicesUnder(prefix);
  const errors: string[] = [];
  for (const d of devices) {
    try {
      await runCommand('losetup', ['-d', d.name]);
    } catch (e) {
      errors.push(`${d.name} (${d.backFile}): ${(e as Error).message}`);
    }
  }
  if (errors.length > 0) throw new Error(`could not detach loop devices: ${errors.join('; ')}`);
  return devices;
}

export interface MountEntry {
  readonly mountPoint: string;
  readonly fsType: string;
  readonly source: string;
}

/** Undoes the octal escapes (`\040` for a space) the kernel uses in mountinfo fields. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** Parses /proc/<pid>/mountinfo: `id parent maj:min root mountpoint opts [optional...] - fstype source superopts`. */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    const mp = fields[4];
    if (mp === undefined || dash < 0) continue;
    out.push({
      mountPoint: unescapeMountField(mp),
      fsType: fields[dash + 1] ?? '',
      source: unescapeMountField(fields[dash + 2] ?? ''),
    });
  }
  return out;
}

/** Mount points under `prefix` in this process's mount namespace, deepest first. */
export function mountsUnder(prefix: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const points = parseMountInfo(mountinfo)
    .map((m) => m.mountPoint)
    .filter((p) => isUnder(p, prefix));
  return deepestFirst(points);
}

/** Sorts paths so that a path comes before any of its ancestors (children unmount first). */
export function deepestFirst(paths: readonly string[]): string[] {
  const depth = (p: string) => p.split('/').filter(Boolean).length;
  return [...paths].sort((a, b) => depth(b) - depth(a) || b.length - a.length || a.localeCompare(b));
}

/**
 * Unmounts everything under `prefix`, deepest first, repeating while mounts are stacked on the
 * same point. A busy mount is detached lazily (`umount -l`) as a last resort. Returns the mount
 * points unmounted, in order (a point appears once per mount stacked on it).
 */
export async function unmountUnder(prefix: string): Promise<string[]> {
  const done: string[] = [];
  for (let round = 0; round < 32; round++) {
    const points = mountsUnder(prefix);
    if (points.length === 0) return done;
    for (const p of points) {
      try {
        await runCommand('umount', [p]);
      } catch {
        await runCommand('umount', ['-l', p]);
      }
      done.push(p);
    }
  }
  const left = mountsUnder(prefix);
  if (left.length > 0) throw new Error(`mounts remain under ${prefix}: ${left.join(', ')}`);
  return done;
}

/** The devices in `losetup -j FILE` output (`/dev/loop4: [65024]:9981053 (/f.img)` lines). */
export function parseLosetupAssociated(text: string): string[] {
  return [...text.matchAll(/^(\/dev\/loop\d+):/gm)].map((m) => m[1]!);
}

/**
 * Detaches the loop devices backed by each of `files` that exists. `losetup -j` matches the
 * file itself (device and inode), not its path: this finds devices attached through another
 * path, such as a bind mount in a private mount namespace, whose back-file reads differently
 * here. Returns the devices detached.
 */
export async function detachLoopDevicesBackedBy(files: readonly string[]): Promise<string[]> {
  const detached: string[] = [];
  for (const file of files) {
    if (!existsSync(file)) continue;
    const { stdout } = await runCommand('losetup', ['-j', file]);
    for (const dev of parseLosetupAssociated(stdout)) {
      await runCommand('losetup', ['-d', dev]);
      detached.push(dev);
    }
  }
  return detached;
}
