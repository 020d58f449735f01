import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { constants, copyFile, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, type TestContext, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import { isDotmeshError } from '@dotmesh/core';
import { makeTempDir, pumpBinary, skipUnless } from '@dotmesh/testkit';
import { readAll } from '../conformance-util.ts';
import type { CommitRef } from '../driver.ts';
import { createExec } from '../exec.ts';
import { FRAME_DATA, FRAME_END, frameDecoder } from '../frames.ts';
import { BtrfsCli } from './btrfs-cli.ts';
import { BtrfsDriver } from './btrfs-driver.ts';
import { listDir } from './fsutil.ts';
import { destroyPool, openPool } from './pool.ts';
import { ensurePoolFile } from './pool-format.ts';
import {
  SEND_ATTR,
  SEND_CMD,
  SendStreamCheck,
  type SendStreamExpectation,
  type SendStreamSubvolume,
  type SendStreamSummary,
} from './send-stream-check.ts';

const exec = createExec();
const UNLINK = 11; // BTRFS_SEND_C_UNLINK
const cli = new BtrfsCli(exec);
const KIB = 1024;

// --- crafting streams: a minimal reader/writer of the v1 framing, crc32c included -------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();
/** crc32c as btrfs send uses it: seed 0, no final inversion. */
function crc32c(b: Buffer): number {
  let c = 0;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}

interface Cmd {
  readonly start: number;
  readonly end: number;
  readonly cmd: number;
  readonly attrs: [number, Buffer][];
}
function commandsOf(stream: Buffer): Cmd[] {
  const out: Cmd[] = [];
  for (let at = 17; at < stream.length; ) {
    const len = stream.readUInt32LE(at);
    const attrs: [number, Buffer][] = [];
    for (let t = at + 10; t < at + 10 + len; ) {
      const tlen = stream.readUInt16LE(t + 2);
      attrs.push([stream.readUInt16LE(t), stream.subarray(t + 4, t + 4 + tlen)]);
      t += 4 + tlen;
    }
    out.push({ start: at, end: at + 10 + len, cmd: stream.readUInt16LE(at + 4), attrs });
    at += 10 + len;
  }
  return out;
}
function encodeCommand(cmd: number, attrs: [number, Buffer][]): Buffer {
  const payload = Buffer.concat(
    attrs.flatMap(([type, value]) => {
      const h = Buffer.alloc(4);
      h.writeUInt16LE(type, 0);
      h.writeUInt16LE(value.length, 2);
      return [h, value];
    }),
  );
  const header = Buffer.alloc(10);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt16LE(cmd, 4);
  const whole = Buffer.concat([header, payload]);
  whole.writeUInt32LE(crc32c(whole), 6);
  return whole;
}
/** `stream` with attribute `type` of command `c` set to `value` (crc fixed). */
function withAttr(stream: Buffer, c: Cmd, type: number, value: Buffer): Buffer {
  const attrs = c.attrs.map(([t, v]): [number, Buffer] => [t, t === type ? value : v]);
  return Buffer.concat([stream.subarray(0, c.start), encodeCommand(c.cmd, attrs), stream.subarray(c.end)]);
}
const uuidBytes = (u: string) => Buffer.from(u.replaceAll('-', ''), 'hex');
const uuidOf = (b: Buffer) => b.toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');
/**
 * `stream` with the UUIDs its SUBVOL/SNAPSHOT/CLONE commands name (own, parent, clone
 * sources) rewritten through `map` (crc fixed): e.g. a copy of a commit's stream that the pool
 * it came from can import again, or a hostile stream claiming another subvolume's UUID.
 */
function remapUuids(stream: Buffer, map: ReadonlyMap<string, string>): Buffer {
  const parts = [stream.subarray(0, 17)];
  for (const c of commandsOf(stream)) {
    const named = c.cmd === SEND_CMD.SUBVOL || c.cmd === SEND_CMD.SNAPSHOT || c.cmd === SEND_CMD.CLONE;
    const renamed = (type: number, v: Buffer) =>
      (type === SEND_ATTR.UUID || type === SEND_ATTR.CLONE_UUID) && map.has(uuidOf(v)) ? uuidBytes(map.get(uuidOf(v))!) : v;
    const attrs = c.attrs.map(([t, v]): [number, Buffer] => [t, renamed(t, v)]);
    const changed = named && attrs.some(([, v], i) => v !== c.attrs[i]![1]);
    parts.push(changed ? encodeCommand(c.cmd, attrs) : stream.subarray(c.start, c.end));
  }
  return Buffer.concat(parts);
}

/** The btrfs send stream inside a driver's (framed) export. */
const sendStreamOf = (framedStream: Readable) => readAll(framedStream.pipe(frameDecoder('test export')));

/** A framed stream (frames.ts) of `parts`, one data frame per part, as they come. */
function framed(parts: Iterable<Buffer> | AsyncIterable<Buffer>): Readable {
  return Readable.from(
    (async function* () {
      let total = 0;
      let frames = 0;
      for await (const part of parts) {
        if (part.length === 0) continue;
        const head = Buffer.alloc(9);
        head.writeUInt8(FRAME_DATA, 0);
        head.writeUInt32BE(part.length + 4, 1);
        head.writeUInt32BE(crc32(part), 5);
        yield Buffer.concat([head, part]);
        total += part.length;
        frames++;
      }
      const end = Buffer.alloc(17);
      end.writeUInt8(FRAME_END, 0);
      end.writeUInt32BE(12, 1);
      end.writeBigUInt64BE(BigInt(total), 5);
      end.writeUInt32BE(frames, 13);
      yield end;
    })(),
  );
}

const chunked = (b: Buffer, size: number): Buffer[] => {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
};

/** Runs the check alone over `chunks`: the bytes it let through, its summary, or its error. */
async function runCheck(chunks: Buffer[], parentUuids: string[] | null, more: Partial<SendStreamExpectation> = {}) {
  const check = new SendStreamCheck({ ...more, parentUuids });
  try {
    const out = await readAll(Readable.from(chunks).pipe(check));
    return { out, summary: check.summary as SendStreamSummary, error: undefined };
  } catch (e) {
    return { out: undefined, summary: check.summary, error: e as Error };
  }
}

/** Subvolumes of the filesystem holding `path` whose UUID or received UUID is `uuid`. */
const holdersOf = async (path: string, uuid: string) =>
  (await cli.list(path)).filter((e) => e.uuid === uuid || e.receivedUuid === uuid).map((e) => e.path);

async function sendRaw(args: string[]): Promise<Buffer> {
  const child = exec.spawn('btrfs', ['send', '-q', ...args], { stdin: 'ignore' });
  const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
  const out = await readAll(child.stdout!);
  assert.equal(await closed, 0, `btrfs send ${args.join(' ')} failed`);
  return out;
}

/** Refused with `code` and a message matching `why`; nothing left: same commits, empty staging. */
async function refusedIn(d: BtrfsDriver, v: string, p: Promise<unknown>, why: RegExp, code = 'INVALID_ARGUMENT') {
  const ids = async () => (await d.listCommits(v)).map((c) => c.id);
  const before = await ids();
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isDotmeshError(e), `expected a DotmeshError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, why);
    return true;
  });
  assert.deepEqual(await ids(), before);
  assert.deepEqual(await listDir(d.layout.stagingDir), []);
}

let scratches = 0;
/** `btrfs receive` alone (no check) into a scratch directory of `d`'s pool, kept while `body` runs. */
async function receiveUncheckedIn(d: BtrfsDriver, stream: Buffer, body: (dir: string) => Promise<void>) {
  const dir = join(d.layout.root, `scratch${++scratches}`);
  await mkdir(dir);
  try {
    await exec.run('btrfs', ['receive', '-e', '--chroot', dir], { input: stream });
    await body(dir);
  } finally {
    await cli.delete((await listDir(dir)).map((n) => join(dir, n))).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

describe('btrfs send stream check', { skip: skipUnless(['root', 'btrfs', 'losetup']) }, () => {
  let base = '';
  let poolFile = '';
  let mountPoint = '';
  let d: BtrfsDriver;
  let volumes = 0;
  const f: Record<'full' | 'inc' | 'xa' | 'zb', Buffer> = {
    full: Buffer.alloc(0),
    inc: Buffer.alloc(0),
    xa: Buffer.alloc(0),
    zb: Buffer.alloc(0),
  };
  let c1Uuid = '';
  let c2Uuid = '';
  let secret = Buffer.alloc(0);

  const live = (v: string, rel: string) => join(d.volumePath(v), rel);
  const put = async (v: string, rel: string, data: Buffer | string) => {
    await mkdir(dirname(live(v, rel)), { recursive: true });
    await writeFile(live(v, rel), data);
  };
  const reflink = (from: string, to: string) => copyFile(from, to, constants.COPYFILE_FICLONE_FORCE);
  const freshVolume = async () => {
    const v = `t${++volumes}`;
    await d.createVolume(v, {});
    return v;
  };
  const ids = async (v: string) => (await d.listCommits(v)).map((c) => c.id);
  const importBuf = (v: string, b: Buffer | Buffer[], parent?: CommitRef) =>
    d.importCommit(v, framed(Array.isArray(b) ? b : [b]), parent ? { parent } : {});
  const refused = (v: string, p: Promise<unknown>, why: RegExp) => refusedIn(d, v, p, why);
  const receiveUnchecked = (stream: Buffer, body: (dir: string) => Promise<void>) => receiveUncheckedIn(d, stream, body);

  before(async () => {
    base = await makeTempDir('sendcheck');
    poolFile = join(base, 'p.img');
    mountPoint = join(base, 'p');
    const pool = await openPool({ poolFile, mountPoint, sizeBytes: 300 * 1024 * 1024, sparse: true, exec });
    const root = join(pool.root, 'r');
    await mkdir(root);
    await ensurePoolFile(root);
    d = new BtrfsDriver({ root, exec, pump: { binary: await pumpBinary() } });
    await d.open();

    // x holds a secret; z is made independently; y too, but shares the secret's extents (reflink)
    secret = randomBytes(256 * KIB);
    await d.createVolume('x', {});
    await put('x', 'secret', secret);
    await d.commit('x', 'a', {});
    await d.createVolume('y', {});
    await put('y', 'own', 'y data');
    await reflink(join(d.commitPath('x', 'a'), 'secret'), live('y', 'stolen'));
    await d.commit('y', 'b', {});
    await d.createVolume('z', {});
    await put('z', 'own', 'z data');
    await d.commit('z', 'b', {});
    f.xa = await sendStreamOf(d.exportCommit('x', 'a'));
    f.zb = await sendStreamOf(d.exportCommit('z', 'b', { parent: { volumeId: 'x', commitId: 'a' } }));

    // src: c1 clones from itself; c2 clones from itself (f2) and from c1 (h2: h is gone in c2).
    // esc is a symlink that, seen from a commit's subvolume, leads into x's live state.
    await d.createVolume('src', {});
    await put('src', 'f', randomBytes(128 * KIB));
    await reflink(live('src', 'f'), live('src', 'fcopy'));
    await put('src', 'h', randomBytes(256 * KIB));
    await put('src', 'd/g', 'one');
    await symlink('../../../../x/live', live('src', 'esc'));
    await d.commit('src', 'c1', {});
    await reflink(live('src', 'f'), live('src', 'f2'));
    await reflink(live('src', 'h'), live('src', 'h2'));
    await rm(live('src', 'h'));
    await put('src', 'd/g', 'two');
    await d.commit('src', 'c2', {});
    f.full = await sendStreamOf(d.exportCommit('src', 'c1'));
    f.inc = await sendStreamOf(d.exportCommit('src', 'c2', { parent: { volumeId: 'src', commitId: 'c1' } }));
    c1Uuid = (await cli.show(d.commitPath('src', 'c1'))).uuid;
    c2Uuid = (await cli.show(d.commitPath('src', 'c2'))).uuid;
  });
  /**
   * src's c1 (full) and c2 (from c1) under fresh UUIDs. The pool holds src's commits, and
   * refuses a stream whose UUID it already holds: every import of them uses its own copy.
   */
  const freshSrc = () => {
    const m = new Map([
      [c1Uuid, randomUUID()],
      [c2Uuid, randomUUID()],
    ]);
    return { full: remapUuids(f.full, m), inc: remapUuids(f.inc, m), c1: m.get(c1Uuid)!, c2: m.get(c2Uuid)! };
  };
  after(async () => {
    if (mountPoint) await destroyPool({ poolFile, mountPoint, exec }).catch((e) => console.error(e));
    if (base) await rm(base, { recursive: true, force: true });
  });

  test('a real stream passes unchanged, whole or in 1-byte chunks, and agrees with btrfs receive --dump', async () => {
    for (const [stream, parentUuids] of [
      [f.full, null],
      [f.inc, [c1Uuid]],
    ] as const) {
      const parents = parentUuids ? [...parentUuids] : null;
      const whole = await runCheck([stream], parents);
      const bytewise = await runCheck(chunked(stream, 1), parents);
      const odd = await runCheck(chunked(stream, 4093), parents);
      assert.equal(whole.error, undefined);
      assert.ok(whole.out?.equals(stream));
      assert.ok(bytewise.out?.equals(stream));
      assert.ok(odd.out?.equals(stream));
      assert.deepEqual(bytewise.summary, whole.summary);
      assert.deepEqual(odd.summary, whole.summary);

      const dump = (await exec.run('btrfs', ['receive', '--dump'], { input: stream })).stdout.trim().split('\n');
      const s = whole.summary;
      assert.equal(s.ended, true);
      assert.equal(dump.length, s.commands - 1); // every command is a line, but END
      const first = dump[0]!.split(/\s+/);
      assert.equal(first[0], parents ? 'snapshot' : 'subvol');
      assert.equal(first[1], `./${s.subvolume?.path}`);
      assert.equal(first[2], `uuid=${s.subvolume?.uuid}`);
      if (parents) assert.equal(first[4], `parent_uuid=${c1Uuid}`);
      assert.equal(s.subvolume?.cloneUuid, parentUuids ? c1Uuid : undefined);
      assert.equal(dump.filter((l) => l.startsWith('clone')).length, s.selfClones + s.parentClones);
      assert.ok(s.selfClones >= 1, 'the stream clones from itself');
      if (parents) assert.ok(s.parentClones >= 1, 'the incremental stream clones from its parent');
    }
    assert.equal((await cli.show(d.commitPath('src', 'c2'))).uuid, (await runCheck([f.inc], [c1Uuid])).summary.subvolume?.uuid);
  });

  test('checkSubvolume sees the first command before it is passed on; its refusal stops it there', async () => {
    const seen: SendStreamSubvolume[] = [];
    const ok = await runCheck(chunked(f.inc, 7), [c1Uuid], { checkSubvolume: async (s) => void seen.push(s) });
    assert.equal(ok.error, undefined);
    assert.deepEqual(seen, [{ path: 'c2', uuid: c2Uuid, cloneUuid: c1Uuid }]);
    assert.deepEqual(ok.summary.subvolume, seen[0]);
    const no = new Error('no');
    const check = new SendStreamCheck({
      parentUuids: null,
      checkSubvolume: async () => {
        await setTimeout(50);
        throw no;
      },
    });
    const passed: Buffer[] = [];
    check.on('data', (b: Buffer) => passed.push(b));
    const failed = new Promise<unknown>((resolve) => check.once('error', resolve));
    for (const b of chunked(f.full, 5)) check.write(b);
    assert.equal(await failed, no);
    assert.deepEqual(Buffer.concat(passed), f.full.subarray(0, 17)); // the stream header only
    assert.equal(check.summary.subvolume, undefined);
  });

  test('a full then an incremental import work, clones from itself and from the parent included', async () => {
    const src = freshSrc();
    const v = await freshVolume();
    await importBuf(v, src.full);
    const parent = { volumeId: v, commitId: 'c1' };
    await importBuf(v, chunked(src.inc, 1000), parent);
    assert.deepEqual(await ids(v), ['c1', 'c2']);
    const c2 = d.commitPath(v, 'c2');
    assert.deepEqual(await readFile(join(c2, 'h2')), await readFile(join(d.commitPath('src', 'c2'), 'h2')));
    assert.deepEqual(await readFile(join(c2, 'f2')), await readFile(join(d.commitPath('src', 'c2'), 'f2')));
    assert.equal(await readFile(join(c2, 'd/g'), 'utf8'), 'two');
    // and from a received parent whose own UUID the stream does not know: matched by received UUID
    const received = await cli.show(d.commitPath(v, 'c1'));
    assert.equal(received.receivedUuid, src.c1);
    // relayed: received commits sent on name themselves (and their clones) by received UUID
    const w = await freshVolume();
    const sentFull = await sendStreamOf(d.exportCommit(v, 'c1'));
    const sentInc = await sendStreamOf(d.exportCommit(v, 'c2', { parent }));
    assert.equal((await runCheck([sentFull], null)).summary.subvolume?.uuid, src.c1);
    const s = (await runCheck([sentInc], [src.c1])).summary;
    assert.equal(s.subvolume?.uuid, src.c2);
    assert.ok(s.selfClones >= 1 && s.parentClones >= 1, JSON.stringify(s));
    // back into this pool, which holds them already (refused as they are): as if from elsewhere
    const relay = new Map([
      [src.c1, randomUUID()],
      [src.c2, randomUUID()],
    ]);
    await importBuf(w, remapUuids(sentFull, relay));
    await importBuf(w, remapUuids(sentInc, relay), { volumeId: w, commitId: 'c1' });
    assert.deepEqual(await ids(w), ['c1', 'c2']);
    assert.deepEqual(await readFile(join(d.commitPath(w, 'c2'), 'h2')), await readFile(join(c2, 'h2')));
  });

  test("an incremental stream from another volume's commit is refused (btrfs alone would take it)", async () => {
    const v = await freshVolume();
    await put(v, 'mine', 'm');
    await d.commit(v, 't1', {});
    await refused(v, importBuf(v, f.zb, { volumeId: v, commitId: 't1' }), /parent [0-9a-f-]{36} is not the expected parent/);
    // without the check: btrfs snapshots x's commit; dropping the stream's `unlink secret` keeps it
    const unlink = commandsOf(f.zb).find((c) => c.cmd === UNLINK && c.attrs.some(([, val]) => val.equals(Buffer.from('secret'))));
    assert.ok(unlink);
    const keepSecret = Buffer.concat([f.zb.subarray(0, unlink.start), f.zb.subarray(unlink.end)]);
    await refused(v, importBuf(v, keepSecret, { volumeId: v, commitId: 't1' }), /is not the expected parent/);
    await receiveUnchecked(keepSecret, async (dir) => {
      assert.deepEqual(await readFile(join(dir, 'b', 'secret')), secret);
    });
  });

  test('a CLONE from a subvolume that is neither the commit nor its parent is refused', async () => {
    const v = await freshVolume();
    await put(v, 'mine', 'm');
    await d.commit(v, 't1', {});
    const yUuid = (await cli.show(d.commitPath('y', 'b'))).uuid;
    const sent = await sendRaw(['-p', d.commitPath(v, 't1'), '-c', d.commitPath('x', 'a'), d.commitPath('y', 'b')]);
    const stream = remapUuids(sent, new Map([[yUuid, randomUUID()]])); // y's commit is in this pool
    const xUuid = (await cli.show(d.commitPath('x', 'a'))).uuid;
    const clones = commandsOf(stream).filter((c) => c.cmd === SEND_CMD.CLONE);
    assert.ok(clones.some((c) => c.attrs.some(([t, val]) => t === SEND_ATTR.CLONE_UUID && val.equals(uuidBytes(xUuid)))));
    await refused(v, importBuf(v, stream, { volumeId: v, commitId: 't1' }), new RegExp(`CLONE from subvolume ${xUuid}`));
    // btrfs receive finds clone sources by received UUID: with a received copy of x's commit
    // anywhere in the pool (the usual case on a server), it would clone the secret
    await receiveUnchecked(f.xa, async () => {
      await receiveUnchecked(stream, async (dir) => {
        assert.deepEqual(await readFile(join(dir, 'b', 'stolen')), secret);
      });
    });
  });

  test('a CLONE whose source path leaves the parent (.. or a symlink) is refused', async () => {
    const src = freshSrc();
    const v = await freshVolume();
    await importBuf(v, src.full);
    const parent = { volumeId: v, commitId: 'c1' };
    const fromParent = commandsOf(src.inc).find(
      (c) => c.cmd === SEND_CMD.CLONE && c.attrs.some(([t, val]) => t === SEND_ATTR.CLONE_UUID && val.equals(uuidBytes(src.c1))),
    )!;
    assert.ok(fromParent, 'the incremental stream clones h2 from the parent');
    const viaSymlink = withAttr(src.inc, fromParent, SEND_ATTR.CLONE_PATH, Buffer.from('esc/secret'));
    const dotdot = withAttr(src.inc, fromParent, SEND_ATTR.CLONE_PATH, Buffer.from('../../../../x/live/secret'));
    await refused(v, importBuf(v, viaSymlink, parent), /CLONE source "esc\/secret" is not a plain file of the parent/);
    await refused(v, importBuf(v, dotdot, parent), /CLONE source path .* is not a relative path inside/);
    // without the check, btrfs receive follows the symlink out of its chroot into x's live state
    await receiveUnchecked(viaSymlink, async (dir) => {
      assert.deepEqual(await readFile(join(dir, 'c2', 'h2')), secret);
    });
  });

  test('two subvolumes in one stream are refused', async () => {
    const v = await freshVolume();
    const { full } = freshSrc();
    await refused(v, importBuf(v, Buffer.concat([full, f.xa])), /data follows the END command/);
    // the second stream arrives after btrfs receive already finished the first at END
    const late = async function* () {
      yield full;
      await setTimeout(500);
      yield f.xa;
    };
    await refused(v, d.importCommit(v, framed(late())), /data follows the END command/);
    const noEnd = full.subarray(0, full.length - 10);
    assert.equal(commandsOf(full).at(-1)?.cmd, SEND_CMD.END);
    await refused(v, importBuf(v, Buffer.concat([noEnd, f.xa.subarray(17)])), /more than one subvolume/);
  });

  test('a subvolume path that is not a commit id is refused (crc fixed: only the check stops it)', async () => {
    const v = await freshVolume();
    const first = commandsOf(f.full)[0]!;
    for (const path of ['../x', 'a/b', '..', 'bad.id', '', 'x'.repeat(65)]) {
      const patched = withAttr(f.full, first, SEND_ATTR.PATH, Buffer.from(path));
      if (path === '../x') {
        const dump = await exec.run('btrfs', ['receive', '--dump'], { input: patched });
        assert.match(dump.stdout, /^subvol\s+\.\/\.\.\/x\s/); // btrfs accepts the crafted bytes
      }
      await refused(v, importBuf(v, patched), /SUBVOL path .* is not a commit id/);
    }
  });

  test('bad magic, versions, lengths and truncations are refused', async () => {
    const v = await freshVolume();
    const f = { full: freshSrc().full }; // refusals leave nothing behind: one copy does for all
    const badMagic = Buffer.from(f.full);
    badMagic.write('BTRFS', 0, 'latin1');
    await refused(v, importBuf(v, badMagic), /bad magic/);
    const v2 = Buffer.from(f.full);
    v2.writeUInt32LE(2, 13);
    await refused(v, importBuf(v, v2), /unsupported stream version 2/);
    await refused(v, importBuf(v, Buffer.alloc(0)), /empty stream/);
    await refused(v, importBuf(v, f.full.subarray(0, 10)), /truncated stream header/);
    await refused(v, importBuf(v, f.full.subarray(0, 17 + 5)), /middle of a command/);
    await refused(v, importBuf(v, f.full.subarray(0, f.full.length - 10)), /without an END command/);
    await refused(v, importBuf(v, f.full.subarray(0, f.full.length - 20)), /middle of a command/);
    const huge = Buffer.from(f.full);
    huge.writeUInt32LE(0x7fffffff, 17);
    await refused(v, importBuf(v, huge), /claims 2147483647 bytes/);
    const unknown = Buffer.from(f.full);
    unknown.writeUInt16LE(99, 17 + 4);
    await refused(v, importBuf(v, unknown), /unknown command 99/);
  });

  test('a full stream where a parent is expected, and an incremental one where none is, are refused', async () => {
    const src = freshSrc();
    const v = await freshVolume();
    await importBuf(v, src.full);
    const parent = { volumeId: v, commitId: 'c1' };
    await refused(v, importBuf(v, f.xa, parent), /incremental stream was expected/);
    const w = await freshVolume();
    await refused(w, importBuf(w, src.inc), /full stream was expected/);
    await importBuf(v, src.inc, parent);
    assert.deepEqual(await ids(v), ['c1', 'c2']);
  });
});

describe('one UUID per pool: no stream plants what btrfs receive resolves a parent to', {
  skip: skipUnless(['root', 'btrfs', 'losetup']),
}, () => {
  let base = '';
  const pools: { poolFile: string; mountPoint: string }[] = [];
  let a: BtrfsDriver;
  let b: BtrfsDriver;
  let c: BtrfsDriver;
  const openDriver = async (name: string) => {
    const p = { poolFile: join(base, `${name}.img`), mountPoint: join(base, name) };
    pools.push(p);
    const pool = await openPool({ ...p, sizeBytes: 300 * 1024 * 1024, sparse: true, exec });
    const root = join(pool.root, 'r');
    await mkdir(root);
    await ensurePoolFile(root);
    const driver = new BtrfsDriver({ root, exec, pump: { binary: await pumpBinary() } });
    await driver.open();
    return driver;
  };
  const put = async (d: BtrfsDriver, v: string, rel: string, data: Buffer | string) => {
    await mkdir(dirname(join(d.volumePath(v), rel)), { recursive: true });
    await writeFile(join(d.volumePath(v), rel), data);
  };
  const text = (d: BtrfsDriver, v: string, commitId: string, rel: string) =>
    readFile(join(d.commitPath(v, commitId), rel), 'utf8');
  const ref = (v: string, commitId: string | undefined): { parent?: CommitRef } =>
    commitId ? { parent: { volumeId: v, commitId } } : {};
  const exportOf = (d: BtrfsDriver, v: string, commitId: string, parent?: string) =>
    sendStreamOf(d.exportCommit(v, commitId, ref(v, parent)));
  const importTo = (d: BtrfsDriver, v: string, stream: Buffer, parent?: string) =>
    d.importCommit(v, framed([stream]), ref(v, parent));
  const uuidOfCommit = async (d: BtrfsDriver, v: string, commitId: string) => (await cli.show(d.commitPath(v, commitId))).uuid;
  const ids = async (d: BtrfsDriver, v: string) => (await d.listCommits(v)).map((x) => x.id);
  /** Every UUID and received UUID value of the filesystem is carried by one subvolume only. */
  const assertUnique = async (d: BtrfsDriver) => {
    const seen = new Map<string, string>();
    for (const e of await cli.list(d.layout.root)) {
      for (const u of [e.uuid, e.receivedUuid]) {
        if (!u) continue;
        assert.equal(seen.get(u), undefined, `${u} is carried by ${seen.get(u)} and ${e.path}`);
        seen.set(u, e.path);
      }
    }
  };

  before(async () => {
    base = await makeTempDir('uuids');
    a = await openDriver('a');
    b = await openDriver('b');
    c = await openDriver('c');
  });
  after(async () => {
    for (const p of pools.reverse()) await destroyPool({ ...p, exec }).catch((e) => console.error(e));
    if (base) await rm(base, { recursive: true, force: true });
  });

  test("a stream claiming a local commit's UUID is refused; btrfs alone would let it hijack that commit's next increment", async () => {
    // A: the victim's volume v, commit c1 made here. B: the attacker's commit e1.
    await a.createVolume('v', {});
    await put(a, 'v', 'f', 'victim one');
    await a.commit('v', 'c1', {});
    const c1 = await uuidOfCommit(a, 'v', 'c1');
    await b.createVolume('evil', {});
    await put(b, 'evil', 'f', 'attacker');
    await put(b, 'evil', 'planted', 'attacker data');
    await b.commit('evil', 'e1', {});
    const planted = remapUuids(await exportOf(b, 'evil', 'e1'), new Map([[await uuidOfCommit(b, 'evil', 'e1'), c1]]));
    assert.equal((await runCheck([planted], null)).summary.subvolume?.uuid, c1);

    await a.createVolume('w', {});
    await refusedIn(
      a,
      'w',
      importTo(a, 'w', planted),
      new RegExp(`stream's subvolume uuid ${c1} is already in this pool \\(it is the UUID of`),
    );
    assert.deepEqual(
      (await holdersOf(a.layout.root, c1)).map((p) => p.replace(/^.*?\/fs\//, 'fs/')),
      ['fs/v/commits/c1/c1'],
    );

    // the victim's legitimate next commit: c1 went to B, c2 was made there, and comes back
    await b.createVolume('v', {});
    await importTo(b, 'v', await exportOf(a, 'v', 'c1'));
    await b.rollback('v', { volumeId: 'v', commitId: 'c1' });
    await put(b, 'v', 'f', 'victim two');
    await b.commit('v', 'c2', {});
    const inc = await exportOf(b, 'v', 'c2', 'c1');
    assert.equal((await runCheck([inc], [c1])).summary.subvolume?.cloneUuid, c1);

    // planted without the check (or in a pool filled before it existed): btrfs receive takes
    // the planted subvolume as c2's parent; importCommit refuses the ambiguous parent
    await receiveUncheckedIn(a, planted, async () => {
      await receiveUncheckedIn(a, inc, async (dir) => {
        assert.equal(await readFile(join(dir, 'c2', 'planted'), 'utf8'), 'attacker data');
      });
      await refusedIn(a, 'v', importTo(a, 'v', inc, 'c1'), /parent commit c1 is ambiguous in this pool: 1 other subvolume/);
    });
    const got = await importTo(a, 'v', inc, 'c1');
    assert.equal(got.id, 'c2');
    assert.equal(await text(a, 'v', 'c2', 'f'), 'victim two');
    await assert.rejects(readFile(join(a.commitPath('v', 'c2'), 'planted')), { code: 'ENOENT' });
    // btrfs based c2 on c1 itself
    const c2 = await cli.show(a.commitPath('v', 'c2'));
    assert.equal((await cli.list(a.layout.root)).find((e) => e.uuid === c2.uuid)?.parentUuid, c1);
    await assertUnique(a);
    await assertUnique(b);
  });

  test('a commit is received at most once per pool: refused in another volume; COMMIT_EXISTS in its own', async () => {
    await a.createVolume('once', {});
    await put(a, 'once', 'f', 'once');
    await a.commit('once', 'k1', {});
    const k1 = await uuidOfCommit(a, 'once', 'k1');
    const stream = await exportOf(a, 'once', 'k1');
    await b.createVolume('once', {});
    await importTo(b, 'once', stream);
    await b.createVolume('again', {});
    await refusedIn(
      b,
      'again',
      importTo(b, 'again', stream),
      new RegExp(`uuid ${k1} is already in this pool \\(it is the received UUID of`),
    );
    await refusedIn(b, 'once', importTo(b, 'once', stream), /commit k1 already exists in volume once/, 'COMMIT_EXISTS');
    // nor may a stream take the local UUID of the received copy
    const local = await uuidOfCommit(b, 'once', 'k1');
    await refusedIn(
      b,
      'again',
      importTo(b, 'again', remapUuids(stream, new Map([[k1, local]]))),
      new RegExp(`uuid ${local} is already in this pool \\(it is the UUID of`),
    );
    assert.deepEqual(await ids(b, 'again'), []);
    await assertUnique(b);
  });

  test('chains of received commits: A → B → C and back to A, full and incremental, clones included', async () => {
    await a.createVolume('chain', {});
    const big = randomBytes(192 * KIB);
    await put(a, 'chain', 'big', big);
    await put(a, 'chain', 'f', 'k1');
    await a.commit('chain', 'k1', {});
    await copyFile(join(a.volumePath('chain'), 'big'), join(a.volumePath('chain'), 'big2'), constants.COPYFILE_FICLONE_FORCE);
    await put(a, 'chain', 'f', 'k2');
    await a.commit('chain', 'k2', {});
    // A → B, then k3 made on B
    await b.createVolume('chain', {});
    await importTo(b, 'chain', await exportOf(a, 'chain', 'k1'));
    await importTo(b, 'chain', await exportOf(a, 'chain', 'k2', 'k1'), 'k1');
    await b.rollback('chain', { volumeId: 'chain', commitId: 'k2' });
    await put(b, 'chain', 'f', 'k3');
    await b.commit('chain', 'k3', {});
    // B → C (k1, k2 relayed: named by their received UUIDs), then k4 made on C
    await c.createVolume('chain', {});
    await importTo(c, 'chain', await exportOf(b, 'chain', 'k1'));
    await importTo(c, 'chain', await exportOf(b, 'chain', 'k2', 'k1'), 'k1');
    await importTo(c, 'chain', await exportOf(b, 'chain', 'k3', 'k2'), 'k2');
    await c.rollback('chain', { volumeId: 'chain', commitId: 'k3' });
    await put(c, 'chain', 'f', 'k4');
    await c.commit('chain', 'k4', {});
    // C → A: k3 (made on B) onto A's own k2, then k4
    await importTo(a, 'chain', await exportOf(c, 'chain', 'k3', 'k2'), 'k2');
    await importTo(a, 'chain', await exportOf(c, 'chain', 'k4', 'k3'), 'k3');
    assert.deepEqual(await ids(a, 'chain'), ['k1', 'k2', 'k3', 'k4']);
    assert.deepEqual(await ids(c, 'chain'), ['k1', 'k2', 'k3', 'k4']);
    for (const [d, k] of [
      [c, 'k2'],
      [c, 'k3'],
      [a, 'k4'],
    ] as const) {
      assert.equal(await text(d, 'chain', k, 'f'), k);
      assert.deepEqual(await readFile(join(d.commitPath('chain', k), 'big2')), big);
    }
    // every copy of a commit, wherever it is, names it by the UUID it was first made with
    const k3 = await uuidOfCommit(b, 'chain', 'k3');
    assert.equal((await cli.show(c.commitPath('chain', 'k3'))).receivedUuid, k3);
    assert.equal((await cli.show(a.commitPath('chain', 'k3'))).receivedUuid, k3);
    for (const d of [a, b, c]) await assertUnique(d);
  });

  test('imports with ~500 subvolumes in the pool (prints the cost)', async (t: TestContext) => {
    const many = join(c.layout.root, 'many');
    await mkdir(many);
    const t0 = performance.now();
    for (let i = 0; i < 500; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, j) => cli.create(join(many, `s${i + j}`))));
    }
    const t1 = performance.now();
    const count = (await cli.list(c.layout.root)).length;
    const t2 = performance.now();
    assert.ok(count >= 500, String(count));
    await a.createVolume('bulk', {});
    await put(a, 'bulk', 'f', randomBytes(64 * KIB));
    await a.commit('bulk', 'b1', {});
    await put(a, 'bulk', 'g', 'more');
    await a.commit('bulk', 'b2', {});
    const full = await exportOf(a, 'bulk', 'b1');
    const inc = await exportOf(a, 'bulk', 'b2', 'b1');
    await c.createVolume('bulk', {});
    const t3 = performance.now();
    await importTo(c, 'bulk', full);
    const t4 = performance.now();
    await importTo(c, 'bulk', inc, 'b1');
    const t5 = performance.now();
    await c.createVolume('late', {});
    await refusedIn(c, 'late', importTo(c, 'late', full), /is already in this pool/);
    const t6 = performance.now();
    assert.deepEqual(await ids(c, 'bulk'), ['b1', 'b2']);
    const ms = (x: number) => `${Math.round(x)} ms`;
    t.diagnostic(
      `${count} subvolumes (500 made in ${ms(t1 - t0)}): btrfs subvolume list ${ms(t2 - t1)}; ` +
        `full import ${ms(t4 - t3)}, incremental ${ms(t5 - t4)}, refused duplicate ${ms(t6 - t5)}`,
    );
    await cli.delete((await listDir(many)).map((n) => join(many, n)));
    await rm(many, { recursive: true, force: true });
  });

  test('one stream raced into two volumes of a pool: at most one copy survives', async (t: TestContext) => {
    await a.createVolume('race', {});
    await put(a, 'race', 'f', randomBytes(512 * KIB));
    await a.commit('race', 'r1', {});
    const stream = await exportOf(a, 'race', 'r1');
    const r1 = await uuidOfCommit(a, 'race', 'r1');
    // both get past the first command before either ends: each sees no copy of r1 there yet
    const slow = () =>
      framed(
        (async function* () {
          yield stream.subarray(0, stream.length - 10);
          await setTimeout(300);
          yield stream.subarray(stream.length - 10);
        })(),
      );
    await b.createVolume('race1', {});
    await b.createVolume('race2', {});
    const results = await Promise.allSettled([b.importCommit('race1', slow()), b.importCommit('race2', slow())]);
    const survived = results.filter((r) => r.status === 'fulfilled').length;
    assert.ok(survived <= 1, 'both copies survived');
    for (const r of results) {
      if (r.status === 'rejected') {
        assert.ok(isDotmeshError(r.reason) && r.reason.code === 'INVALID_ARGUMENT', String(r.reason));
        // caught after btrfs receive: both were past the first check before either ended
        assert.match(r.reason.message, new RegExp(`uuid ${r1} is already in this pool \\(received concurrently`));
      }
    }
    assert.equal((await holdersOf(b.layout.root, r1)).length, survived);
    assert.deepEqual(await listDir(b.layout.stagingDir), []);
    t.diagnostic(`${survived} of 2 racing imports survived: ${results.map((r) => r.status).join(', ')}`);
    await assertUnique(b);
  });
});
