import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { readAll, rejectsWithCode, text, vid, type WithHarness } from './conformance-util.ts';
import { END_FRAME_BYTES, flipOnePayloadByte } from './frames.ts';

/** Conformance cases: sizes, export/import, parallelism, open(). */
export function dataCases(withHarness: WithHarness): void {
  test(
    'sizes: dirty after any write, clean after commit; referencedBytes grows',
    withHarness(async (h, d) => {
      const id = vid();
      await d.createVolume(id, {});
      const dirty = async () => (await d.sizes([id])).get(id)!;
      assert.equal((await dirty()).dirty, false, 'a new volume is clean');
      const before = (await dirty()).referencedBytes;
      await h.writeFile(id, 'big', Buffer.alloc(1 << 20, 7));
      let s = await dirty();
      assert.equal(s.dirty, true);
      assert.ok(s.dirtyBytes > 0);
      assert.ok(s.referencedBytes >= before + (1 << 19), `referenced ${s.referencedBytes} should grow`);
      await d.commit(id, 'c1', {});
      s = await dirty();
      assert.equal(s.dirty, false);
      assert.equal(s.dirtyBytes, 0);
      await h.writeFile(id, 'big', Buffer.alloc(1 << 20, 8));
      assert.equal((await dirty()).dirty, true, 'overwrite with same size is dirty');
      await d.commit(id, 'c2', {});
      await h.readFile(id, 'big');
      assert.equal((await dirty()).dirty, false, 'reading is not writing');
      await h.removeFile(id, 'big');
      assert.equal((await dirty()).dirty, true, 'removing a file is dirty');
      await d.commit(id, 'c3', {});
      assert.equal((await dirty()).dirty, false);
      const all = await d.sizes();
      assert.ok(all.has(id));
      await h.writeFile(id, 'again', 'y');
      const dirtyOnly = (await d.sizes([id], { referenced: false })).get(id)!;
      assert.deepEqual(
        { dirty: dirtyOnly.dirty, referencedBytes: dirtyOnly.referencedBytes },
        { dirty: true, referencedBytes: 0 },
        'referenced: false tells the dirty state and measures no bytes',
      );
    }),
  );

  test(
    'sizes: branch and rollback start clean',
    withHarness(async (h, d) => {
      const a = vid();
      const b = vid();
      await d.createVolume(a, {});
      await h.writeFile(a, 'f', 'x');
      await d.commit(a, 'c1', {});
      await d.createVolume(b, {}, { from: { volumeId: a, commitId: 'c1' } });
      await h.writeFile(a, 'f', 'y');
      const s = await d.sizes([a, b]);
      assert.equal(s.get(b)?.dirty, false);
      assert.equal(s.get(a)?.dirty, true);
      await h.writeFile(b, 'f', 'z');
      assert.equal((await d.sizes([b])).get(b)?.dirty, true);
    }),
  );

  test(
    'export/import: full then incremental into another pool; meta kept',
    withHarness(async (h, d) => {
      const h2 = h.makeSecondHarness ? await h.makeSecondHarness() : h;
      const d2 = h2.driver;
      await d2.open();
      const src = vid();
      const dst = vid();
      await d.createVolume(src, {});
      await h.writeFile(src, 'f', 'one');
      await h.writeFile(src, 'keep', 'k');
      await d.commit(src, 'c1', { message: 'first' });
      await h.writeFile(src, 'f', 'two');
      await h.removeFile(src, 'keep');
      await d.commit(src, 'c2', { message: 'second' });
      await d2.createVolume(dst, {});
      const i1 = await d2.importCommit(dst, d.exportCommit(src, 'c1'));
      assert.equal(i1.id, 'c1');
      assert.deepEqual(i1.meta, { message: 'first' });
      const i2 = await d2.importCommit(dst, d.exportCommit(src, 'c2', { parent: { volumeId: src, commitId: 'c1' } }), {
        parent: { volumeId: dst, commitId: 'c1' },
      });
      assert.ok(i2.seq > i1.seq);
      assert.deepEqual(
        (await d2.listCommits(dst)).map((c) => [c.id, c.meta]),
        [
          ['c1', { message: 'first' }],
          ['c2', { message: 'second' }],
        ],
      );
      assert.equal(text(await h2.readCommitFile(dst, 'c1', 'f')), 'one');
      assert.equal(text(await h2.readCommitFile(dst, 'c2', 'f')), 'two');
      await assert.rejects(h2.readCommitFile(dst, 'c2', 'keep'));
      // a received commit can be branched from and rolled back to (stays usable for later increments)
      await d2.rollback(dst, { volumeId: dst, commitId: 'c2' });
      assert.equal(text(await h2.readFile(dst, 'f')), 'two');
      await rejectsWithCode(d2.importCommit(dst, d.exportCommit(src, 'c2')), 'COMMIT_EXISTS');
      await rejectsWithCode(readAll(d.exportCommit(src, 'missing')), 'COMMIT_NOT_FOUND');
    }),
  );

  test(
    'import of a truncated stream leaves nothing visible',
    withHarness(async (h, d) => {
      const h2 = h.makeSecondHarness ? await h.makeSecondHarness() : h;
      const d2 = h2.driver;
      await d2.open();
      const src = vid();
      const dst = vid();
      await d.createVolume(src, {});
      await h.writeFile(src, 'big', Buffer.alloc(256 * 1024, 3));
      await d.commit(src, 'c1', {});
      await d2.createVolume(dst, {});
      const whole = await readAll(d.exportCommit(src, 'c1'));
      const half = Readable.from([whole.subarray(0, Math.floor(whole.length / 2))]);
      await assert.rejects(d2.importCommit(dst, half));
      const failing = new Readable({
        read() {
          this.push(whole.subarray(0, 100));
          this.destroy(new Error('peer went away'));
        },
      });
      await assert.rejects(d2.importCommit(dst, failing));
      // every byte but the end frame arrives, then the source fails: refused, never left waiting
      let sent = false;
      const failsLate = new Readable({
        read() {
          if (!sent) {
            sent = true;
            this.push(whole.subarray(0, whole.length - END_FRAME_BYTES));
            setTimeout(() => this.destroy(new Error('connection reset at the end')), 200);
          }
        },
      });
      await assert.rejects(d2.importCommit(dst, failsLate));
      // a byte flipped on the way: TRANSFER_CORRUPT
      await rejectsWithCode(d2.importCommit(dst, Readable.from([whole]).pipe(flipOnePayloadByte())), 'TRANSFER_CORRUPT');
      // a source that already failed before the import began (its 'error' event long gone)
      const dead = new Readable({ read() {} });
      dead.on('error', () => {});
      dead.push(whole.subarray(0, 100));
      dead.destroy(new Error('failed while waiting for a lock'));
      await new Promise((r) => setImmediate(r));
      await assert.rejects(d2.importCommit(dst, dead));
      assert.deepEqual(await d2.listCommits(dst), []);
      // read up to its end frame and no further: a stream that goes on (a connection that will
      // carry an answer back) completes the import without ending
      const goesOn = new Readable({ read() {} });
      goesOn.push(whole);
      const ok = await d2.importCommit(dst, goesOn);
      assert.equal(goesOn.destroyed, false, 'the stream is left open');
      goesOn.destroy();
      assert.equal(ok.id, 'c1');
      assert.equal((await h2.readCommitFile(dst, 'c1', 'big')).length, 256 * 1024);
    }),
  );

  test(
    'parallel commits on different volumes',
    withHarness(async (h, d) => {
      const ids = [vid(), vid(), vid(), vid()];
      await Promise.all(ids.map((id) => d.createVolume(id, { id })));
      await Promise.all(ids.map((id) => h.writeFile(id, 'f', id)));
      await Promise.all(ids.flatMap((id) => [d.commit(id, 'c1', {}).then(() => d.commit(id, 'c2', { id }))]));
      for (const id of ids) {
        assert.deepEqual(
          (await d.listCommits(id)).map((c) => c.id),
          ['c1', 'c2'],
        );
        assert.equal(text(await h.readCommitFile(id, 'c2', 'f')), id);
      }
    }),
  );

  test(
    'open() is idempotent and keeps volumes and commits',
    withHarness(async (h, d) => {
      const id = vid();
      await d.createVolume(id, { l: 1 });
      await h.writeFile(id, 'f', 'x');
      await d.commit(id, 'c1', { m: 1 });
      const r1 = await d.open();
      const r2 = await d.open();
      assert.deepEqual(r1.actions, []);
      assert.deepEqual(r2.actions, []);
      assert.deepEqual((await d.listVolumes()).find((v) => v.id === id)?.label, { l: 1 });
      assert.deepEqual(
        (await d.listCommits(id)).map((c) => c.meta),
        [{ m: 1 }],
      );
      const info = await d.poolInfo();
      assert.match(info.poolId, /^[0-9a-f]{16}$/);
      assert.ok(info.totalBytes > 0 && info.freeBytes <= info.totalBytes);
    }),
  );
}
