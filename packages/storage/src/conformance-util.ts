import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { isDotmeshError } from '@dotmesh/core';
import type { DriverHarness } from './conformance.ts';
import type { StorageDriver } from './driver.ts';

/** Wraps a test body: fresh opened harness, always cleaned up. */
export type WithHarness = (body: (h: DriverHarness, d: StorageDriver) => Promise<void>) => () => Promise<void>;

export const text = (b: Buffer): string => b.toString('utf8');

export async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isDotmeshError(e), `expected DotmeshError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    return true;
  });
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

let counter = 0;
/** A volume id unique within the process. */
export const vid = (): string => `v${process.pid}-${++counter}`;
