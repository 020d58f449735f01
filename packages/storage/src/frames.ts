import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { finished } from 'node:stream/promises';
import { crc32 } from 'node:zlib';
import { DotmeshError } from '@dotmesh/core';

/**
 * The framing of a commit stream (transfer protocol v1): what the storage drivers' exportCommit
 * produces and importCommit takes, and what moves between servers, around the driver's own
 * format (a `btrfs send` stream, the memory driver's JSON):
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
 * FrameReader passes payload bytes on as they arrive, before their frame's CRC is known: a
 * consumer must treat its input as unconfirmed until the end frame was read without error (a
 * commit becomes visible only after its whole input ended well). dotmesh-pump, the btrfs
 * driver's C helper, implements the same format and checks each frame before passing it on.
 */
export const FRAME_DATA = 1;
export const FRAME_END = 2;
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;
const HEADER_BYTES = 5;
const CRC_BYTES = 4;
const END_BODY_BYTES = 12;
/** Bytes of the end frame, the last of every stream. */
export const END_FRAME_BYTES = HEADER_BYTES + END_BODY_BYTES;
/** Bytes gathered into one data frame: fewer, larger writes through every later stage. */
export const TARGET_FRAME_BYTES = 1024 * 1024;
/** Buffering between the stages of a transfer pipeline, so producer and consumer overlap. */
export const PIPELINE_HIGH_WATER_MARK = 8 * 1024 * 1024;

/**
 * Driver stream in, framed stream out: data gathered into frames of about 1 MiB, the frame's
 * header pushed before its pieces (no copy of the payload).
 */
export function frameEncoder(): Transform {
  let total = 0;
  let frames = 0;
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
    for (const p of pending) push(p);
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
 * Test hook (failpoint `transfer.corrupt-stream`): a framed stream in, the same stream out with
 * one byte flipped in the middle of its first data frame's payload, so its checksum fails.
 */
export function flipOnePayloadByte(): Transform {
  let at = 0;
  let target = -1;
  const head = Buffer.alloc(HEADER_BYTES);
  return new Transform({
    readableHighWaterMark: PIPELINE_HIGH_WATER_MARK,
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      let out = chunk;
      for (let i = 0; i < chunk.length && at + i < HEADER_BYTES; i++) head[at + i] = chunk[i] ?? 0;
      const end = at + chunk.length;
      if (target < 0 && end >= HEADER_BYTES && head.readUInt8(0) === FRAME_DATA) {
        target = HEADER_BYTES + CRC_BYTES + ((head.readUInt32BE(1) - CRC_BYTES) >> 1);
      }
      if (target >= at && target < end) {
        out = Buffer.from(chunk);
        out[target - at] = (out[target - at] ?? 0) ^ 0x40;
      }
      at = end;
      done(null, out);
    },
  });
}

/**
 * The decoding state of one framed stream: `feed` it the bytes as they come. Payload pieces
 * are handed out as they arrive, before their frame's CRC is known (see above). Errors are
 * DotmeshError TRANSFER_CORRUPT; `what` names the stream in messages.
 */
export class FrameReader {
  readonly #what: string;
  /** Bytes of a frame header or end body collected across chunks. */
  #head = Buffer.alloc(0);
  /** In a data frame: its expected CRC, the CRC so far and the payload bytes still to come. */
  #expectedCrc = 0;
  #crc = 0;
  #left = 0;
  #inData = false;
  #total = 0;
  #frames = 0;
  #ended = false;

  constructor(what: string) {
    this.#what = what;
  }

  /** True once the end frame was read (and its totals matched). */
  get ended(): boolean {
    return this.#ended;
  }

  fail(msg: string): DotmeshError {
    return new DotmeshError('TRANSFER_CORRUPT', `${this.#what}: ${msg}`, { hint: 'run the transfer again' });
  }

  /**
   * Consumes `chunk`, passing payload pieces to `emit`; returns how many bytes of it belong to
   * the stream (fewer than its length only when the end frame ends inside it).
   */
  feed(chunk: Buffer, emit: (payload: Buffer) => void): number {
    let pos = 0;
    while (pos < chunk.length && !this.#ended) {
      if (this.#inData) {
        const part = chunk.subarray(pos, pos + Math.min(this.#left, chunk.length - pos));
        this.#crc = crc32(part, this.#crc);
        this.#left -= part.length;
        pos += part.length;
        this.#total += part.length;
        emit(part);
        if (this.#left === 0) {
          this.#inData = false;
          if (this.#crc !== this.#expectedCrc)
            throw this.fail(`checksum mismatch before byte ${this.#total} (the stream was altered on the way)`);
        }
        continue;
      }
      // A frame header (5 bytes), then the CRC of a data frame or the body of the end frame.
      const head = this.#head;
      const need =
        head.length < HEADER_BYTES
          ? HEADER_BYTES
          : HEADER_BYTES + (head.readUInt8(0) === FRAME_DATA ? CRC_BYTES : END_BODY_BYTES);
      const take = Math.min(need - head.length, chunk.length - pos);
      this.#head = Buffer.concat([head, chunk.subarray(pos, pos + take)]);
      pos += take;
      if (this.#head.length < need) continue;
      this.#headerDone(need);
    }
    return pos;
  }

  /** Throws unless the stream is complete. */
  finish(): void {
    if (!this.#ended) throw this.fail('the stream ended before its last frame (connection lost?)');
  }

  #headerDone(need: number): void {
    const head = this.#head;
    if (need === HEADER_BYTES) {
      const type = head.readUInt8(0);
      const length = head.readUInt32BE(1);
      if (type === FRAME_DATA) {
        if (length <= CRC_BYTES || length > CRC_BYTES + MAX_FRAME_BYTES) throw this.fail(`invalid data frame length ${length}`);
      } else if (type === FRAME_END) {
        if (length !== END_BODY_BYTES) throw this.fail(`invalid end frame length ${length}`);
      } else {
        throw this.fail(`unknown frame type ${type}`);
      }
      return;
    }
    if (head.readUInt8(0) === FRAME_DATA) {
      this.#expectedCrc = head.readUInt32BE(HEADER_BYTES);
      this.#left = head.readUInt32BE(1) - CRC_BYTES;
      this.#crc = 0;
      this.#inData = true;
      this.#frames += 1;
    } else {
      if (head.readBigUInt64BE(HEADER_BYTES) !== BigInt(this.#total) || head.readUInt32BE(HEADER_BYTES + 8) !== this.#frames) {
        throw this.fail('the stream lost or repeated a frame (totals differ)');
      }
      this.#ended = true;
    }
    this.#head = Buffer.alloc(0);
  }
}

/**
 * Framed stream in, driver stream out, without copying payloads; the input must end right
 * after its end frame. Errors as described above; `what` names the stream in messages.
 */
export function frameDecoder(what: string): Transform {
  const reader = new FrameReader(what);
  return new Transform({
    readableHighWaterMark: PIPELINE_HIGH_WATER_MARK,
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      try {
        if (reader.feed(chunk, (p) => this.push(p)) < chunk.length) throw reader.fail('bytes after the end of the stream');
        done();
      } catch (e) {
        done(e as Error);
      }
    },
    flush(done: TransformCallback) {
      try {
        reader.finish();
        done();
      } catch (e) {
        done(e as Error);
      }
    },
  });
}

/**
 * Reads a framed stream up to its end frame and returns its payload, every frame checked. The
 * stream is left paused and open after the end frame (a connection may go on carrying other
 * things); bytes after the end frame in what was read are refused. A stream that ends first:
 * TRANSFER_CORRUPT; one that fails: its error. `onProgress` gets the bytes read so far.
 */
export function readFramed(stream: Readable, what: string, onProgress?: (bytes: number) => void): Promise<Buffer> {
  const reader = new FrameReader(what);
  const parts: Buffer[] = [];
  let bytes = 0;
  return new Promise<Buffer>((resolve, reject) => {
    const stop = (e?: Error) => {
      stream.off('data', onData);
      stream.pause();
      if (e) reject(e);
      else resolve(Buffer.concat(parts));
    };
    const onData = (chunk: Buffer) => {
      try {
        const used = reader.feed(chunk, (p) => parts.push(Buffer.from(p)));
        bytes += used;
        onProgress?.(bytes);
        if (!reader.ended) return;
        stop(used < chunk.length ? reader.fail('bytes after the end of the stream') : undefined);
      } catch (e) {
        stop(e as Error);
      }
    };
    // finished() also reports a stream that failed or ended before this call.
    finished(stream, { writable: false }).then(
      () => {
        if (!reader.ended) stop(reader.fail('the stream ended before its last frame (connection lost?)'));
      },
      (e: Error) => {
        if (!reader.ended) stop(e);
      },
    );
    stream.on('data', onData);
    stream.resume(); // also a stream paused before
  });
}
