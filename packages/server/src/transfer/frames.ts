import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import { DotmeshError } from '@dotmesh/core';

/**
 * The framing of a commit stream between two servers (transfer protocol v1), around the
 * driver's own stream (a `btrfs send` stream):
 *
 *     frame := type:u8  length:u32be  body[length]
 *     type 1 = data: body = crc32:u32be  payload[length - 4]       (payload 1..MAX_FRAME_BYTES)
 *     type 2 = end:  body = totalBytes:u64be  dataFrames:u32be     (always the last frame)
 *
 * Each data frame carries the CRC-32 of its payload, so damage is caught at the frame it hit;
 * the end frame carries the payload's total length and the number of data frames, so a stream
 * that lost or repeated a frame fails too. A stream that stops before its end frame, has an
 * unknown frame type, an oversized frame, or bytes after the end frame, fails: the receiver
 * never completes a commit from it. CRC-32 (zlib's, several GB/s) rather than a cryptographic
 * hash: it guards against accidental damage, which is all a checksum can do here — the sender
 * writes the stream anyway, and TLS guards it on the way (docs/decisions.md). The driver's
 * stream has its own checks underneath (btrfs's per-command CRC-32C, the receiver's header
 * checks).
 *
 * The decoder passes payload bytes on as they arrive, before their frame's CRC is known: a
 * consumer must treat its input as unconfirmed until the decoder's stream ends without error
 * (the storage driver does: a commit becomes visible only after its whole input ended well).
 */
export const FRAME_DATA = 1;
export const FRAME_END = 2;
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;
const HEADER_BYTES = 5;
const CRC_BYTES = 4;
const END_BODY_BYTES = 12;
/** Bytes gathered into one data frame: fewer, larger writes through every later stage. */
export const TARGET_FRAME_BYTES = 1024 * 1024;
/** Buffering between the stages of a transfer pipeline, so producer and consumer overlap. */
export const PIPELINE_HIGH_WATER_MARK = 8 * 1024 * 1024;

export interface FrameEncoderOptions {
  /** Test hook (failpoint `transfer.corrupt-stream`): flip one byte after checksumming it. */
  readonly corrupt?: boolean;
}

/**
 * Driver stream in, framed stream out: data gathered into frames of about 1 MiB, the frame's
 * header pushed before its pieces (no copy of the payload).
 */
export function frameEncoder(options: FrameEncoderOptions = {}): Transform {
  let total = 0;
  let frames = 0;
  let corrupt = options.corrupt === true;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let crc = 0;
  const emit = (push: (b: Buffer) => void) => {
    if (pendingBytes === 0) return;
    const head = Buffer.allocUnsafe(HEADER_BYTES + CRC_BYTES);
    head.writeUInt8(FRAME_DATA, 0);
    head.writeUInt32BE(CRC_BYTES + pendingBytes, 1);
    head.writeUInt32BE(crc, HEADER_BYTES);
    push(head);
    for (const p of pending) {
      if (corrupt) {
        const copy = Buffer.from(p);
        copy[copy.length >> 1] = (copy[copy.length >> 1] ?? 0) ^ 0x40;
        corrupt = false;
        push(copy);
      } else push(p);
    }
    total += pendingBytes;
    frames += 1;
    pending = [];
    pendingBytes = 0;
    crc = 0;
  };
  return new Transform({
    readableHighWaterMark: PIPELINE_HIGH_WATER_MARK,
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      for (let off = 0; off < chunk.length; ) {
        const part = chunk.subarray(off, off + Math.min(chunk.length - off, MAX_FRAME_BYTES - pendingBytes));
        pending.push(part);
        pendingBytes += part.length;
        crc = crc32(part, crc);
        off += part.length;
        if (pendingBytes >= TARGET_FRAME_BYTES) emit((b) => this.push(b));
      }
      done();
    },
    flush(done: TransformCallback) {
      emit((b) => this.push(b));
      const end = Buffer.alloc(HEADER_BYTES + END_BODY_BYTES);
      end.writeUInt8(FRAME_END, 0);
      end.writeUInt32BE(END_BODY_BYTES, 1);
      end.writeBigUInt64BE(BigInt(total), HEADER_BYTES);
      end.writeUInt32BE(frames, HEADER_BYTES + 8);
      this.push(end);
      done();
    },
  });
}

/**
 * Framed stream in, driver stream out, without copying payloads. Errors (DotmeshError
 * TRANSFER_CORRUPT) as described above; `what` names the stream in messages.
 */
export function frameDecoder(what: string): Transform {
  /** Bytes of a frame header or end body collected across chunks. */
  let head = Buffer.alloc(0);
  /** In a data frame: its expected CRC, the CRC so far and the payload bytes still to come. */
  let expectedCrc = 0;
  let crc = 0;
  let left = 0;
  let inData = false;
  let total = 0;
  let frames = 0;
  let ended = false;
  const fail = (msg: string) => new DotmeshError('TRANSFER_CORRUPT', `${what}: ${msg}`, { hint: 'run the transfer again' });
  return new Transform({
    readableHighWaterMark: PIPELINE_HIGH_WATER_MARK,
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      let pos = 0;
      while (pos < chunk.length) {
        if (ended) return done(fail('bytes after the end of the stream'));
        if (inData) {
          const part = chunk.subarray(pos, pos + Math.min(left, chunk.length - pos));
          crc = crc32(part, crc);
          left -= part.length;
          pos += part.length;
          total += part.length;
          this.push(part);
          if (left === 0) {
            inData = false;
            if (crc !== expectedCrc)
              return done(fail(`checksum mismatch before byte ${total} (the stream was altered on the way)`));
          }
          continue;
        }
        // A frame header (5 bytes), then the CRC of a data frame or the body of the end frame.
        const need =
          head.length < HEADER_BYTES
            ? HEADER_BYTES
            : HEADER_BYTES + (head.readUInt8(0) === FRAME_DATA ? CRC_BYTES : END_BODY_BYTES);
        const take = Math.min(need - head.length, chunk.length - pos);
        head = Buffer.concat([head, chunk.subarray(pos, pos + take)]);
        pos += take;
        if (head.length < need) continue;
        if (need === HEADER_BYTES) {
          const type = head.readUInt8(0);
          const length = head.readUInt32BE(1);
          if (type === FRAME_DATA) {
            if (length <= CRC_BYTES || length > CRC_BYTES + MAX_FRAME_BYTES)
              return done(fail(`invalid data frame length ${length}`));
          } else if (type === FRAME_END) {
            if (length !== END_BODY_BYTES) return done(fail(`invalid end frame length ${length}`));
          } else {
            return done(fail(`unknown frame type ${type}`));
          }
          continue;
        }
        if (head.readUInt8(0) === FRAME_DATA) {
          expectedCrc = head.readUInt32BE(HEADER_BYTES);
          left = head.readUInt32BE(1) - CRC_BYTES;
          crc = 0;
          inData = true;
          frames += 1;
        } else {
          if (head.readBigUInt64BE(HEADER_BYTES) !== BigInt(total) || head.readUInt32BE(HEADER_BYTES + 8) !== frames) {
            return done(fail('the stream lost or repeated a frame (totals differ)'));
          }
          ended = true;
        }
        head = Buffer.alloc(0);
      }
      done();
    },
    flush(done: TransformCallback) {
      if (!ended) return done(fail('the stream ended before its last frame (connection lost?)'));
      done();
    },
  });
}
