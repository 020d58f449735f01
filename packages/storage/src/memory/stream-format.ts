import { DotmeshError } from '@dotmesh/core';
import type { CommitMeta } from '../driver.ts';

/**
 * The memory driver's stream format: JSON lines.
 *   1. header  {"format":"dotmesh-memory-stream","version":1,"commitId","uuid","parentUuid"?,"meta"}
 *   2. entries {"op":"put","path","data":<base64>} | {"op":"del","path"}
 *   3. trailer {"end":true,"entries":<count>}
 * A stream without its trailer (or with a wrong count) is incomplete and must be rejected.
 * `uuid` identifies the sent commit; an incremental stream names its parent by `parentUuid`,
 * which the receiver matches against its commits' own or received uuids (as btrfs does).
 */
export const STREAM_FORMAT = 'dotmesh-memory-stream';

export interface StreamHeader {
  readonly format: typeof STREAM_FORMAT;
  readonly version: 1;
  readonly commitId: string;
  readonly uuid: string;
  readonly parentUuid?: string;
  readonly meta: CommitMeta;
}

export type StreamEntry =
  | { readonly op: 'put'; readonly path: string; readonly data: string }
  | { readonly op: 'del'; readonly path: string };

export function* encodeStream(header: StreamHeader, entries: readonly StreamEntry[]): Generator<string> {
  yield `${JSON.stringify(header)}\n`;
  for (const e of entries) yield `${JSON.stringify(e)}\n`;
  yield `${JSON.stringify({ end: true, entries: entries.length })}\n`;
}

export interface DecodedStream {
  readonly header: StreamHeader;
  readonly entries: StreamEntry[];
}

/** Parses a whole stream; throws INVALID_ARGUMENT when it is malformed or truncated. */
export function decodeStream(text: string): DecodedStream {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const bad = (why: string) => new DotmeshError('INVALID_ARGUMENT', `invalid or incomplete commit stream: ${why}`);
  const parse = (line: string | undefined): Record<string, unknown> => {
    try {
      const v: unknown = JSON.parse(line ?? '');
      if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {}
    throw bad('unparseable line');
  };
  const header = parse(lines[0]);
  if (header.format !== STREAM_FORMAT || header.version !== 1) throw bad('unknown header');
  const trailer = parse(lines.at(-1));
  if (lines.length < 2 || trailer.end !== true || trailer.entries !== lines.length - 2) throw bad('missing trailer (truncated)');
  const entries: StreamEntry[] = [];
  for (const line of lines.slice(1, -1)) {
    const e = parse(line);
    if (typeof e.path !== 'string') throw bad('entry without path');
    if (e.op === 'put' && typeof e.data === 'string') entries.push({ op: 'put', path: e.path, data: e.data });
    else if (e.op === 'del') entries.push({ op: 'del', path: e.path });
    else throw bad('unknown entry');
  }
  return { header: header as unknown as StreamHeader, entries };
}
