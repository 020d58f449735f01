import { createInterface } from 'node:readline';
import type { Exec } from '../exec.ts';

/**
 * Typed wrappers over the `btrfs` commands the driver uses (btrfs-progs >= 5.x output).
 * All go through the injected Exec; parsing is strict and throws on lines it cannot read.
 */
export interface SubvolumeShow {
  readonly uuid: string;
  /** '-' in btrfs output becomes undefined. */
  readonly receivedUuid: string | undefined;
  readonly generation: number;
  readonly genAtCreation: number;
  readonly readonly: boolean;
}

export interface SubvolumeListEntry {
  readonly id: number;
  readonly gen: number;
  readonly cgen: number;
  readonly topLevel: number;
  readonly uuid: string;
  /** UUID of the subvolume this one is a snapshot of ('-' → undefined). */
  readonly parentUuid: string | undefined;
  readonly receivedUuid: string | undefined;
  /** Relative to the filesystem's top-level subvolume. */
  readonly path: string;
}

export class BtrfsCli {
  private readonly exec: Exec;
  constructor(exec: Exec) {
    this.exec = exec;
  }

  async create(path: string): Promise<void> {
    await this.exec.run('btrfs', ['subvolume', 'create', path]);
  }

  async snapshot(source: string, dest: string, options: { readonly: boolean }): Promise<void> {
    await this.exec.run('btrfs', ['subvolume', 'snapshot', ...(options.readonly ? ['-r'] : []), source, dest]);
  }

  /** Sets a subvolume's `ro` property (works on a mounted subvolume others have open). */
  async setReadOnly(path: string, readOnly: boolean): Promise<void> {
    await this.exec.run('btrfs', ['property', 'set', '-ts', path, 'ro', String(readOnly)]);
  }

  /** Deletes subvolumes (read-only ones too). Space is freed asynchronously by the cleaner. */
  async delete(paths: readonly string[]): Promise<void> {
    if (paths.length > 0) await this.exec.run('btrfs', ['subvolume', 'delete', ...paths]);
  }

  async show(path: string): Promise<SubvolumeShow> {
    const { stdout } = await this.exec.run('btrfs', ['subvolume', 'show', path]);
    const field = (name: string): string => {
      const m = new RegExp(`^\\s*${name}:\\s*(.*)$`, 'm').exec(stdout);
      if (!m) throw new Error(`btrfs subvolume show ${path}: no "${name}" in output`);
      return m[1]!.trim();
    };
    const received = field('Received UUID');
    return {
      uuid: field('UUID'),
      receivedUuid: received === '-' ? undefined : received,
      generation: Number(field('Generation')),
      genAtCreation: Number(field('Gen at creation')),
      readonly: /\breadonly\b/.test(field('Flags')),
    };
  }

  /**
   * Every subvolume of the filesystem holding `path` with generations, in one call.
   * Line shape (btrfs-progs 6.2): `ID 256 gen 7 cgen 7 top level 5 parent_uuid - received_uuid - uuid <u> path a/b`.
   */
  async list(path: string): Promise<SubvolumeListEntry[]> {
    const { stdout } = await this.exec.run('btrfs', ['subvolume', 'list', '-g', '-c', '-u', '-q', '-R', path]);
    const re = /^ID (\d+) gen (\d+) cgen (\d+) top level (\d+) parent_uuid (\S+)\s+received_uuid (\S+)\s+uuid (\S+) path (.+)$/;
    return stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((line) => {
        const m = re.exec(line);
        if (!m) throw new Error(`cannot parse btrfs subvolume list line: ${line}`);
        return {
          id: Number(m[1]),
          gen: Number(m[2]),
          cgen: Number(m[3]),
          topLevel: Number(m[4]),
          parentUuid: m[5] === '-' ? undefined : m[5]!,
          receivedUuid: m[6] === '-' ? undefined : m[6]!,
          uuid: m[7]!,
          path: m[8]!.replace(/^<FS_TREE>\//, ''),
        };
      });
  }

  /** Commits the current transaction of the filesystem holding `path` (durability point). */
  async sync(path: string): Promise<void> {
    await this.exec.run('btrfs', ['filesystem', 'sync', path]);
  }

  /**
   * Bytes referenced by each path (`btrfs filesystem du -s --raw`, "Total" column: extents
   * the tree references, shared ones counted in full; inline data of tiny files is not
   * counted). Cost: walks every file of each tree (fiemap per file), O(files); no quotas needed.
   */
  async du(paths: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (paths.length === 0) return out;
    const { stdout } = await this.exec.run('btrfs', ['filesystem', 'du', '-s', '--raw', ...paths]);
    for (const line of stdout.split('\n').slice(1)) {
      const m = /^\s*(\d+)\s+(\d+)\s+(\d+|-)\s+(.+)$/.exec(line);
      if (m) out.set(m[4]!, Number(m[1]));
    }
    return out;
  }

  /**
   * Estimate of bytes written to `path` after generation `gen`: the sum of `len` of the
   * extents `btrfs subvolume find-new` reports, reading at most `maxLines` lines (bounded cost;
   * deletions and metadata-only changes count 0).
   */
  async changedBytes(path: string, gen: number, maxLines = 100_000): Promise<number> {
    const child = this.exec.spawn('btrfs', ['subvolume', 'find-new', path, String(gen)], { stdin: 'ignore' });
    const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    let total = 0;
    let lines = 0;
    const rl = createInterface({ input: child.stdout! });
    for await (const line of rl) {
      const m = / len (\d+) /.exec(line);
      if (m) total += Number(m[1]);
      if (++lines >= maxLines) {
        child.kill();
        break;
      }
    }
    await closed;
    return total;
  }
}
