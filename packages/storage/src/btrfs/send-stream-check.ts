import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { DotmeshError } from '@dotmesh/core';
import { STORAGE_ID_PATTERN } from '../ids.ts';

/**
 * Checks a `btrfs send` stream (format v1) as it flows into `btrfs receive`, which would
 * otherwise look up an incremental stream's parent and every clone source by UUID anywhere in
 * the filesystem, i.e. could copy data out of another volume's subvolume.
 *
 * Format (kernel fs/btrfs/send.h, all little-endian): a 17-byte stream header (13-byte magic
 * "btrfs-stream\0", u32 version), then commands: a 10-byte header (u32 payload length, u16
 * command, u32 crc32c) and a payload of TLVs (u16 type, u16 length, value).
 */
export const SEND_CMD = { SUBVOL: 1, SNAPSHOT: 2, CLONE: 16, END: 21, LAST_V1: 22 } as const;
export const SEND_ATTR = { UUID: 1, PATH: 15, CLONE_UUID: 20, CLONE_PATH: 22, LAST_V1: 24 } as const;

const MAGIC = Buffer.from('btrfs-stream\0', 'latin1');
const STREAM_HEADER_BYTES = MAGIC.length + 4;
const CMD_HEADER_BYTES = 10;
/**
 * A v1 sender builds each command, header included, in a 64 KiB buffer (BTRFS_SEND_BUF_SIZE_V1);
 * anything longer is not a v1 stream. This also bounds what the check ever holds in memory.
 */
export const MAX_COMMAND_BYTES = 64 * 1024;

export interface SendStreamExpectation {
  /**
   * The UUID and received UUID of the parent the stream must be incremental from (the
   * receiver's copy of it), or null when a full stream is expected.
   */
  readonly parentUuids: readonly string[] | null;
  /**
   * Called, before the command is passed on, for each CLONE whose source is the parent, with
   * the source path inside the parent; rejecting fails the stream. `btrfs receive` opens that
   * path outside its chroot, following symlinks, so the caller checks it stays in the parent.
   */
  readonly checkParentClonePath?: (path: string) => Promise<void>;
  /**
   * Called once with the stream's subvolume when its first command (SUBVOL/SNAPSHOT) passed
   * every check above, before that command is passed on; rejecting fails the stream, so
   * `btrfs receive` never creates the subvolume. `uuid` becomes the received subvolume's
   * received UUID, under which `btrfs receive` later finds it as a parent or clone source.
   */
  readonly checkSubvolume?: (subvolume: SendStreamSubvolume) => Promise<void>;
  /**
   * The input is the stream's metadata only (what dotmesh-pump sends its checker): the
   * payloads of the commands this check does not decode are left out, their headers stay.
   */
  readonly elidedPayloads?: boolean;
}

/** The subvolume a stream makes, as its first command names it. */
export interface SendStreamSubvolume {
  /** Its name in the receiving directory (a commit id). */
  readonly path: string;
  /** The sender's UUID for it (its received UUID when it was itself received). */
  readonly uuid: string;
  /** SNAPSHOT only: the parent, by the sender's UUID (or received UUID) for it. */
  readonly cloneUuid: string | undefined;
}

/** What the check saw; complete once the stream ended without error. */
export interface SendStreamSummary {
  /** Every command including the first (SUBVOL/SNAPSHOT) and END. */
  commands: number;
  /** Set once the first command passed every check (checkSubvolume included). */
  subvolume: SendStreamSubvolume | undefined;
  selfClones: number;
  parentClones: number;
  ended: boolean;
}

const reject = (what: string) => new DotmeshError('INVALID_ARGUMENT', `invalid btrfs send stream: ${what}`);

const uuidString = (b: Buffer): string => {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

/** TLVs of one decoded command: type → value. Malformed, unknown or repeated attributes are refused. */
function decodeTlvs(payload: Buffer, cmdName: string): Map<number, Buffer> {
  const attrs = new Map<number, Buffer>();
  let at = 0;
  while (at < payload.length) {
    if (payload.length - at < 4) throw reject(`${cmdName} command has a truncated attribute`);
    const type = payload.readUInt16LE(at);
    const len = payload.readUInt16LE(at + 2);
    at += 4;
    if (type === 0 || type > SEND_ATTR.LAST_V1) throw reject(`${cmdName} command has unknown attribute ${type}`);
    if (len > payload.length - at) throw reject(`${cmdName} command has a truncated attribute ${type}`);
    // btrfs receive keeps the last of repeated attributes: refuse them rather than guess
    if (attrs.has(type)) throw reject(`${cmdName} command repeats attribute ${type}`);
    attrs.set(type, payload.subarray(at, at + len));
    at += len;
  }
  return attrs;
}

function uuidAttr(attrs: Map<number, Buffer>, type: number, cmdName: string): string {
  const v = attrs.get(type);
  if (v?.length !== 16) throw reject(`${cmdName} command lacks a 16-byte ${type === SEND_ATTR.UUID ? 'UUID' : 'clone UUID'}`);
  return uuidString(v);
}

/** A relative path that cannot climb out of the directory it is joined to (no `..`, no NUL). */
function isContainedPath(p: string): boolean {
  return p !== '' && !p.startsWith('/') && !p.includes('\0') && !p.split('/').includes('..');
}

type State = 'streamHeader' | 'cmdHeader' | 'command' | 'payload' | 'ended';

/**
 * Passes the stream through unchanged while checking it; fails it (INVALID_ARGUMENT naming the
 * problem) when: the magic or version (1 only) is wrong; a command is unknown, longer than
 * MAX_COMMAND_BYTES or truncated; the first command is not SUBVOL (full stream expected) or
 * SNAPSHOT (parent expected); another SUBVOL/SNAPSHOT follows; the subvolume path is not a
 * commit id (STORAGE_ID_PATTERN); SNAPSHOT's parent is not one of `parentUuids`; a CLONE's
 * source is neither the stream's own subvolume nor the parent, or its path climbs out (`..`);
 * anything follows END; the stream ends before END; `checkSubvolume` rejects the subvolume.
 * A command is passed on only after it was checked, so `btrfs receive` never sees a refused one.
 * Cost: only SUBVOL, SNAPSHOT and CLONE payloads (small) are decoded; other payloads go
 * through as views of the input chunks, skipped by length. crc32c is left to `btrfs receive`.
 */
export class SendStreamCheck extends Transform {
  readonly summary: SendStreamSummary = { commands: 0, subvolume: undefined, selfClones: 0, parentClones: 0, ended: false };
  private readonly parentUuids: ReadonlySet<string> | null;
  private readonly checkParentClonePath: ((path: string) => Promise<void>) | undefined;
  private readonly checkSubvolume: ((subvolume: SendStreamSubvolume) => Promise<void>) | undefined;
  private state: State = 'streamHeader';
  /** Bytes the current unit (stream header, command header or decoded command) needs. */
  private want = STREAM_HEADER_BYTES;
  /** Bytes of the current unit collected across chunks (copies). */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** Payload bytes still to pass through in state 'payload'. */
  private skip = 0;
  private pendingCmd = 0;
  private readonly elidedPayloads: boolean;

  constructor(expect: SendStreamExpectation) {
    super();
    this.elidedPayloads = expect.elidedPayloads === true;
    this.parentUuids = expect.parentUuids ? new Set(expect.parentUuids.map((u) => u.toLowerCase())) : null;
    this.checkParentClonePath = expect.checkParentClonePath;
    this.checkSubvolume = expect.checkSubvolume;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.feed(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    if (this.state === 'ended') callback();
    else if (this.state === 'streamHeader') callback(reject(this.heldBytes === 0 ? 'empty stream' : 'truncated stream header'));
    else if (this.state === 'cmdHeader' && this.heldBytes === 0) callback(reject('stream ended without an END command'));
    else callback(reject('stream ends in the middle of a command'));
  }

  private async feed(chunk: Buffer): Promise<void> {
    let pos = 0;
    /** chunk[from, pos) is checked and not yet pushed. */
    let from = 0;
    while (pos < chunk.length) {
      if (this.state === 'payload') {
        const n = Math.min(this.skip, chunk.length - pos);
        pos += n;
        this.skip -= n;
        if (this.skip === 0) this.afterCommand();
        continue;
      }
      if (this.state === 'ended') throw reject('data follows the END command');
      let unit: Buffer;
      let inChunk: boolean;
      if (this.heldBytes === 0 && chunk.length - pos >= this.want) {
        unit = chunk.subarray(pos, pos + this.want);
        inChunk = true;
        pos += this.want;
      } else {
        if (this.heldBytes === 0 && from < pos) this.push(chunk.subarray(from, pos));
        const n = Math.min(this.want - this.heldBytes, chunk.length - pos);
        this.held.push(Buffer.from(chunk.subarray(pos, pos + n)));
        this.heldBytes += n;
        pos += n;
        from = pos;
        if (this.heldBytes < this.want) continue;
        unit = Buffer.concat(this.held, this.heldBytes);
        this.held = [];
        this.heldBytes = 0;
        inChunk = false;
      }
      const verdict = await this.unit(unit);
      if (verdict === 'hold') {
        // a command to decode: collect it whole (header again included) before passing it on
        if (inChunk) pos -= unit.length;
        else {
          this.held = [unit];
          this.heldBytes = unit.length;
        }
      } else if (!inChunk) this.push(unit);
    }
    if (from < pos) this.push(chunk.subarray(from, pos));
  }

  /** Checks one complete unit; 'hold' asks for the whole command (state 'command', `want` set). */
  private async unit(b: Buffer): Promise<'pass' | 'hold'> {
    switch (this.state) {
      case 'streamHeader': {
        if (!b.subarray(0, MAGIC.length).equals(MAGIC)) throw reject('bad magic (not a btrfs send stream)');
        const version = b.readUInt32LE(MAGIC.length);
        if (version !== 1) throw reject(`unsupported stream version ${version} (only 1)`);
        this.state = 'cmdHeader';
        this.want = CMD_HEADER_BYTES;
        return 'pass';
      }
      case 'cmdHeader':
        return this.commandHeader(b.readUInt32LE(0), b.readUInt16LE(4));
      case 'command':
        await this.decodedCommand(b.subarray(CMD_HEADER_BYTES));
        this.afterCommand();
        return 'pass';
      default:
        throw new Error(`unexpected state ${this.state}`);
    }
  }

  private commandHeader(len: number, cmd: number): 'pass' | 'hold' {
    if (cmd === 0 || cmd > SEND_CMD.LAST_V1) throw reject(`unknown command ${cmd}`);
    if (len > MAX_COMMAND_BYTES - CMD_HEADER_BYTES)
      throw reject(`command ${cmd} claims ${len} bytes (limit ${MAX_COMMAND_BYTES})`);
    const first = this.summary.commands === 0;
    const expected = this.parentUuids ? SEND_CMD.SNAPSHOT : SEND_CMD.SUBVOL;
    if (first && cmd !== expected) {
      throw reject(
        this.parentUuids
          ? `an incremental stream was expected (first command SNAPSHOT), got command ${cmd}`
          : `a full stream was expected (first command SUBVOL), got command ${cmd}`,
      );
    }
    if (!first && (cmd === SEND_CMD.SUBVOL || cmd === SEND_CMD.SNAPSHOT)) {
      throw reject('more than one subvolume in the stream');
    }
    if (cmd === SEND_CMD.END && len !== 0) throw reject('END command with a payload');
    this.pendingCmd = cmd;
    if (first || cmd === SEND_CMD.CLONE) {
      this.state = 'command';
      this.want = CMD_HEADER_BYTES + len;
      return 'hold';
    }
    if (len === 0 || this.elidedPayloads) this.afterCommand();
    else {
      this.state = 'payload';
      this.skip = len;
    }
    return 'pass';
  }

  private async decodedCommand(payload: Buffer): Promise<void> {
    const cmd = this.pendingCmd;
    if (cmd === SEND_CMD.CLONE) return this.clone(decodeTlvs(payload, 'CLONE'));
    const name = cmd === SEND_CMD.SNAPSHOT ? 'SNAPSHOT' : 'SUBVOL';
    const attrs = decodeTlvs(payload, name);
    const path = attrs.get(SEND_ATTR.PATH)?.toString('latin1');
    if (path === undefined || !STORAGE_ID_PATTERN.test(path)) {
      throw reject(`${name} path ${JSON.stringify(path ?? null).slice(0, 100)} is not a commit id`);
    }
    const uuid = uuidAttr(attrs, SEND_ATTR.UUID, name);
    let cloneUuid: string | undefined;
    if (cmd === SEND_CMD.SNAPSHOT) {
      cloneUuid = uuidAttr(attrs, SEND_ATTR.CLONE_UUID, name);
      if (!this.parentUuids?.has(cloneUuid)) {
        throw reject(`the stream's parent ${cloneUuid} is not the expected parent commit`);
      }
    }
    const subvolume = { path, uuid, cloneUuid };
    await this.checkSubvolume?.(subvolume);
    this.summary.subvolume = subvolume;
  }

  /**
   * Mirrors `btrfs receive`: a clone UUID equal to the stream's own UUID means its own
   * subvolume (checked first); anything else is looked up filesystem-wide, so must be the parent.
   */
  private async clone(attrs: Map<number, Buffer>): Promise<void> {
    const uuid = uuidAttr(attrs, SEND_ATTR.CLONE_UUID, 'CLONE');
    const path = attrs.get(SEND_ATTR.CLONE_PATH)?.toString('latin1');
    if (path === undefined || !isContainedPath(path)) {
      throw reject(`CLONE source path ${JSON.stringify(path ?? null).slice(0, 200)} is not a relative path inside its subvolume`);
    }
    if (uuid === this.summary.subvolume?.uuid) {
      this.summary.selfClones++;
      return;
    }
    if (!this.parentUuids?.has(uuid)) throw reject(`CLONE from subvolume ${uuid}, which is neither this commit nor its parent`);
    await this.checkParentClonePath?.(path);
    this.summary.parentClones++;
  }

  private afterCommand(): void {
    this.summary.commands++;
    if (this.pendingCmd === SEND_CMD.END) {
      this.state = 'ended';
      this.summary.ended = true;
    } else {
      this.state = 'cmdHeader';
      this.want = CMD_HEADER_BYTES;
    }
  }
}

/**
 * A checkParentClonePath for the parent subvolume at `root`: the path must name a regular
 * file reached through real directories only (no symlink anywhere, which `btrfs receive`
 * would follow outside its chroot). Send streams only ever name such paths. Verified
 * prefixes are remembered, so repeated clones from one file cost nothing.
 */
export function plainFileIn(root: string): (path: string) => Promise<void> {
  const verified = new Set<string>();
  return async (path) => {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    let rel = '';
    for (const [i, part] of parts.entries()) {
      rel = rel ? `${rel}/${part}` : part;
      if (verified.has(rel)) continue;
      const st = await lstat(join(root, rel)).catch(() => undefined);
      const last = i === parts.length - 1;
      if (!st || (last ? !st.isFile() : !st.isDirectory())) {
        throw reject(`CLONE source ${JSON.stringify(path).slice(0, 200)} is not a plain file of the parent commit`);
      }
      if (verified.size > 100_000) verified.clear();
      verified.add(rel);
    }
    if (parts.length === 0) throw reject('CLONE source path is empty');
  };
}
