import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import { FRAME_DATA, flipOnePayloadByte, frameDecoder, frameEncoder, readFramed } from './frames.ts';

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

const encode = (data: Buffer, corrupt = false) =>
  collect(
    corrupt ? Readable.from([data]).pipe(frameEncoder()).pipe(flipOnePayloadByte()) : Readable.from([data]).pipe(frameEncoder()),
  );

/** Feeds `bytes` to a decoder in chunks of `size`; returns the output or the error. */
async function decode(bytes: Buffer, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  const d = frameDecoder('test stream');
  return collect(Readable.from(chunks).pipe(d));
}

const corruptError = (e: unknown) => isDotmeshError(e) && e.code === 'TRANSFER_CORRUPT';

test('round trip, whatever the chunking on the way', async () => {
  const data = randomBytes(3 * 1024 * 1024 + 12345);
  const framed = await encode(data);
  for (const size of [7, 4096, 65536, 5 * 1024 * 1024]) {
    assert.ok((await decode(framed, size)).equals(data), `chunks of ${size}`);
  }
  const small = data.subarray(0, 100_000);
  assert.ok((await decode(await encode(small), 1)).equals(small), 'chunks of 1 byte');
  assert.equal((await decode(await encode(Buffer.alloc(0)), 3)).length, 0, 'an empty stream is valid');
});

test('a flipped byte, a cut, a lost or repeated frame, trailing bytes: TRANSFER_CORRUPT', async () => {
  const data = randomBytes(2 * 1024 * 1024 + 100);
  const framed = await encode(data);
  await assert.rejects(decode(await encode(data, true), 65536), corruptError);
  const flipped = Buffer.from(framed);
  flipped[framed.length - 3] = (flipped[framed.length - 3] ?? 0) ^ 1; // in the end frame
  await assert.rejects(decode(flipped, 65536), corruptError);
  await assert.rejects(decode(framed.subarray(0, framed.length - 1), 65536), corruptError);
  await assert.rejects(decode(framed.subarray(0, 1000), 65536), corruptError);
  await assert.rejects(decode(Buffer.concat([framed, Buffer.from([1])]), 65536), corruptError);
  // the first data frame left out: the rest is well-formed but the totals do not match
  const firstLength = framed.readUInt32BE(1);
  await assert.rejects(decode(framed.subarray(5 + firstLength), 65536), corruptError);
  // repeated
  const first = framed.subarray(0, 5 + firstLength);
  await assert.rejects(decode(Buffer.concat([first, framed]), 65536), corruptError);
  await assert.rejects(decode(Buffer.from([9, 0, 0, 0, 0]), 5), corruptError);
  await assert.rejects(decode(Buffer.from([1, 0xff, 0xff, 0xff, 0xff]), 5), corruptError);
});

test('flipOnePayloadByte changes exactly one byte, inside the first data frame’s payload', async () => {
  const data = randomBytes(3 * 1024 * 1024);
  const good = await encode(data);
  const bad = await encode(data, true);
  assert.equal(bad.length, good.length);
  const differ = [...good.keys()].filter((i) => good[i] !== bad[i]);
  assert.equal(differ.length, 1);
  assert.equal(good.readUInt8(0), FRAME_DATA);
  const firstEnd = 5 + good.readUInt32BE(1);
  assert.ok(differ[0]! >= 9 && differ[0]! < firstEnd, `flipped byte ${differ[0]} in the first payload (9..${firstEnd})`);
});

test('readFramed: the payload up to the end frame; the stream stays open after it', async () => {
  const data = randomBytes(2 * 1024 * 1024 + 7);
  const framed = await encode(data);
  // a stream that goes on (a connection carrying an answer later) is left open and paused
  const open = new Readable({ read() {} });
  open.pause(); // also a stream paused before (a socket nobody read yet)
  for (let i = 0; i < framed.length; i += 100_000) open.push(framed.subarray(i, i + 100_000));
  const seen: number[] = [];
  assert.ok((await readFramed(open, 'test stream', (n) => seen.push(n))).equals(data));
  assert.equal(seen.at(-1), framed.length, 'progress up to the end frame');
  assert.equal(open.destroyed, false);
  assert.equal(open.isPaused(), true);
  await assert.rejects(readFramed(Readable.from([framed.subarray(0, framed.length - 3)]), 'cut'), corruptError);
  await assert.rejects(readFramed(Readable.from([await encode(data, true)]), 'flipped'), corruptError);
  await assert.rejects(readFramed(Readable.from([Buffer.concat([framed, Buffer.from('x')])]), 'trailing'), corruptError);
  const failing = new Readable({
    read() {
      this.destroy(new Error('peer went away'));
    },
  });
  await assert.rejects(readFramed(failing, 'failing'), /peer went away/);
});
