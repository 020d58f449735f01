import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import { frameDecoder, frameEncoder } from './frames.ts';

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

const encode = (data: Buffer, corrupt = false) => collect(Readable.from([data]).pipe(frameEncoder({ corrupt })));

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
