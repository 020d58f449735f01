import { readFile } from 'node:fs/promises';

export interface MountEntry {
  readonly mountPoint: string;
  /** Path inside the filesystem that is mounted (btrfs: the subvolume path). */
  readonly root: string;
  readonly fsType: string;
  readonly source: string;
  readonly options: string;
}

const unescapeOctal = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

/** Parses /proc/self/mountinfo (fields: id parent maj:min root mountpoint opts [optional...] - fstype source superopts). */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [left, right] = line.split(' - ');
    const l = left?.split(' ') ?? [];
    const r = right?.split(' ') ?? [];
    if (l.length < 6 || r.length < 2) continue;
    out.push({
      root: unescapeOctal(l[3]!),
      mountPoint: unescapeOctal(l[4]!),
      options: l[5]!,
      fsType: r[0]!,
      source: unescapeOctal(r[1]!),
    });
  }
  return out;
}

export async function readMounts(): Promise<MountEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}
