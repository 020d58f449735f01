import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { CsiError, notFound } from '@dotmesh/csi';
import { status as Status } from '@grpc/grpc-js';

/**
 * The "cloud" the test driver stands in for: disks are sparse files in a folder every node
 * shares (`<root>/<zone>/<id>.img`), each with a record (`<root>/records/<id>.json`) saying its
 * name, zone, size and the node it is attached to, as a cloud's disk API would. Only the
 * controller changes records (one call at a time, see serial.ts); nodes read them. A record
 * is written by rename, so a reader never sees half of one.
 */
export interface DiskRecord {
  readonly id: string;
  /** The CSI name it was created with (CreateVolume is idempotent on it). */
  readonly name: string;
  readonly zone: string;
  readonly bytes: number;
  /** The node id it is attached to (one node at a time, as a cloud block disk). */
  readonly attachedTo?: string;
  readonly readOnly?: boolean;
}

/** A disk id from its CSI name: the same name always gives the same disk (a crash mid-create leaks nothing). */
export function diskId(name: string): string {
  return `disk-${createHash('sha256').update(name).digest('hex').slice(0, 20)}`;
}

const ID = /^disk-[0-9a-f]{20}$/;

export class Disks {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  imagePath(d: Pick<DiskRecord, 'id' | 'zone'>): string {
    return join(this.root, d.zone, `${d.id}.img`);
  }

  /** The record of disk `id`, or undefined (also for ids this driver could never have made). */
  async get(id: string): Promise<DiskRecord | undefined> {
    if (!ID.test(id)) return undefined;
    const text = await readFile(this.#recordPath(id), 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    return text === undefined ? undefined : (JSON.parse(text) as DiskRecord);
  }

  /** The record of disk `id`; NOT_FOUND naming it if there is none. */
  async require(id: string): Promise<DiskRecord> {
    const d = await this.get(id);
    if (!d) throw notFound(`volume ${JSON.stringify(id.slice(0, 64))} does not exist`);
    return d;
  }

  async list(): Promise<DiskRecord[]> {
    const files = await readdir(join(this.root, 'records')).catch(() => [] as string[]);
    const disks = await Promise.all(files.filter((f) => f.endsWith('.json')).map((f) => this.get(f.slice(0, -5))));
    return disks.filter((d): d is DiskRecord => d !== undefined).sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Makes the disk (a sparse file of `bytes`) and its record; ALREADY_EXISTS if `name` has one of another size or zone. */
  async create(name: string, bytes: number, zone: string): Promise<DiskRecord> {
    const id = diskId(name);
    const existing = await this.get(id);
    if (existing) {
      if (existing.bytes !== bytes || existing.zone !== zone) {
        throw new CsiError(
          Status.ALREADY_EXISTS,
          `volume ${JSON.stringify(name)} exists with ${existing.bytes} bytes in zone ${existing.zone}, not ${bytes} in ${zone}`,
        );
      }
      return existing;
    }
    const record: DiskRecord = { id, name, zone, bytes };
    await mkdir(join(this.root, zone), { recursive: true });
    const file = await open(this.imagePath(record), 'w', 0o600);
    await file.truncate(bytes);
    await file.close();
    await this.#write(record);
    return record;
  }

  /** Grows the disk to `bytes` (never shrinks it); resolves with its size. */
  async grow(d: DiskRecord, bytes: number): Promise<DiskRecord> {
    if (bytes <= d.bytes) return d;
    await truncate(this.imagePath(d), bytes);
    const grown = { ...d, bytes };
    await this.#write(grown);
    return grown;
  }

  async setAttachment(d: DiskRecord, node: string | undefined, readOnly = false): Promise<DiskRecord> {
    const { attachedTo: _node, readOnly: _ro, ...rest } = d;
    const next: DiskRecord = node === undefined ? rest : { ...rest, attachedTo: node, readOnly };
    await this.#write(next);
    return next;
  }

  /** Removes the disk and its record (the record last: a crash leaves a record whose delete runs again). */
  async remove(d: DiskRecord): Promise<void> {
    await rm(this.imagePath(d), { force: true });
    await rm(this.#recordPath(d.id), { force: true });
  }

  /** The size of the disk's file now (what a node sees after a grow). */
  async fileBytes(d: DiskRecord): Promise<number> {
    return (await stat(this.imagePath(d))).size;
  }

  #recordPath(id: string): string {
    return join(this.root, 'records', `${id}.json`);
  }

  async #write(d: DiskRecord): Promise<void> {
    await mkdir(join(this.root, 'records'), { recursive: true });
    const tmp = `${this.#recordPath(d.id)}.${process.pid}.tmp`;
    const file = await open(tmp, 'w', 0o600);
    await file.writeFile(JSON.stringify(d));
    await file.sync();
    await file.close();
    await rename(tmp, this.#recordPath(d.id));
  }
}
