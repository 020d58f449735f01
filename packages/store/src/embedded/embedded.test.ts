import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, test } from 'node:test';
import { makeTempDir } from '@dotmesh/testkit';
import { runStoreConformance } from '../conformance.ts';
import { ManualClock } from '../engine/clock.ts';
import { MAX_VALUE_BYTES } from '../engine/limits.ts';
import type { WatchEvent } from '../store.ts';
import { EmbeddedStore } from './embedded-store.ts';

const WRITER = new URL('./fixtures/writer.ts', import.meta.url).pathname;
const OPENER = new URL('./fixtures/open-store.ts', import.meta.url).pathname;

runStoreConformance('EmbeddedStore', async () => {
  const dir = await makeTempDir('store');
  const clock = new ManualClock();
  const options = { path: join(dir, 'store.db'), clock };
  return {
    store: await EmbeddedStore.open(options),
    reopen: () => EmbeddedStore.open(options),
    advanceTime: async (ms) => clock.advance(ms),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await makeTempDir('store');
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs a fixture script under node; resolves with its stdout once it exits. */
async function runNode(script: string, args: string[]): Promise<string> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
  });
  const [code] = await once(child, 'exit');
  assert.equal(code, 0, `${script} failed: ${out}`);
  return out;
}

/**
 * Starts the writer, lets it acknowledge at least `acks` writes, checks that this process
 * cannot open the file meanwhile, then SIGKILLs it. Returns the acknowledged indexes.
 */
async function killWriterMidway(path: string, acks: number): Promise<number[]> {
  const child = spawn(process.execPath, [WRITER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let reached: () => void = () => {};
  const enough = new Promise<void>((resolve) => {
    reached = resolve;
  });
  child.stdout.on('data', (chunk) => {
    out += chunk;
    if (out.split('\n').length > acks + 1) reached();
  });
  const exited = once(child, 'exit');
  await Promise.race([enough, exited.then(() => assert.fail(`writer exited early: ${out.slice(-500)}`))]);
  await assert.rejects(EmbeddedStore.open({ path }), { code: 'IN_USE', message: new RegExp(path) });
  child.kill('SIGKILL');
  const [, signal] = await exited;
  assert.equal(signal, 'SIGKILL');
  // Only complete lines are acknowledgements; a torn last line is not.
  const lines = out.split('\n').slice(1, -1);
  return lines.map(Number);
}

describe('EmbeddedStore', () => {
  test('every acknowledged write survives SIGKILL of the writing process, twice over', () =>
    withTempDir(async (dir) => {
      const path = join(dir, 'store.db');
      for (let round = 1; round <= 2; round++) {
        const acked = await killWriterMidway(path, 100 * round);
        const last = acked[acked.length - 1]!;
        const store = await EmbeddedStore.open({ path });
        try {
          const { kvs, revision } = await store.range('k/');
          assert.ok(kvs.length === last + 1 || kvs.length === last + 2, `${kvs.length} keys after ack of ${last}`);
          for (let i = 0; i <= last; i++) {
            assert.equal(kvs[i]?.key, `k/${String(i).padStart(6, '0')}`);
            assert.equal(kvs[i]?.value, `value ${i} ${'x'.repeat(i % 512)}`);
          }
          assert.equal(revision, kvs.length, 'one revision per put');
        } finally {
          await store.close();
        }
      }
      const db = new DatabaseSync(path);
      assert.equal(db.prepare('PRAGMA integrity_check').get()?.integrity_check, 'ok');
      db.close();
    }));

  test('a second process cannot open the file while it is open, and can once it is closed', () =>
    withTempDir(async (dir) => {
      const path = join(dir, 'store.db');
      const store = await EmbeddedStore.open({ path });
      await store.put('a', '1');
      const refused = JSON.parse(await runNode(OPENER, [path]));
      assert.equal(refused.ok, false);
      assert.equal(refused.code, 'IN_USE');
      assert.match(refused.message, /in use by another process/);
      await assert.rejects(EmbeddedStore.open({ path }), { code: 'IN_USE' });
      await store.close();
      assert.deepEqual(JSON.parse(await runNode(OPENER, [path])), { ok: true, revision: 1 });
    }));

  test('creates its directory 0700 and its file 0600', () =>
    withTempDir(async (dir) => {
      const path = join(dir, 'new', 'nested', 'store.db');
      const store = await EmbeddedStore.open({ path });
      try {
        await store.put('a', '1');
        assert.equal((await stat(join(dir, 'new'))).mode & 0o777, 0o700);
        assert.equal((await stat(join(dir, 'new', 'nested'))).mode & 0o777, 0o700);
        assert.equal((await stat(path)).mode & 0o777, 0o600);
        assert.equal((await stat(`${path}-wal`)).mode & 0o777, 0o600);
      } finally {
        await store.close();
      }
    }));

  test('refuses a file that is not a store', () =>
    withTempDir(async (dir) => {
      const path = join(dir, 'garbage.db');
      await writeFile(path, 'this is not sqlite '.repeat(100));
      await assert.rejects(EmbeddedStore.open({ path }), { code: 'INVALID_ARGUMENT', message: /not a dotmesh store file/ });
    }));

  test('a watch from a compacted revision fails with COMPACTED; recent history replays, also after reopen', () =>
    withTempDir(async (dir) => {
      const options = { path: join(dir, 'store.db'), historyRevisions: 5 };
      let store = await EmbeddedStore.open(options);
      try {
        for (let i = 1; i <= 10; i++) await store.put(`k/${i}`, String(i));
        await store.close();
        store = await EmbeddedStore.open(options);
        await assert.rejects(
          store.watch('k/', { fromRevision: 4 }, () => {}),
          { code: 'COMPACTED', data: { fromRevision: 4, compactedRevision: 5 } },
        );
        const seen: WatchEvent[] = [];
        const watcher = await store.watch('k/', { fromRevision: 5 }, (events) => seen.push(...events));
        await new Promise((resolve) => setImmediate(resolve));
        assert.deepEqual(
          seen.map((e) => e.revision),
          [6, 7, 8, 9, 10],
        );
        await watcher.cancel();
      } finally {
        await store.close();
      }
    }));

  test('leases that ran out while the store was closed expire when it opens', () =>
    withTempDir(async (dir) => {
      const clock = new ManualClock();
      const options = { path: join(dir, 'store.db'), clock };
      let store = await EmbeddedStore.open(options);
      const lease = await store.grantLease(10);
      await store.put('eph', 'v', { lease });
      await store.close();
      clock.advance(11_000);
      store = await EmbeddedStore.open(options);
      try {
        assert.equal(await store.get('eph'), undefined);
        await assert.rejects(store.keepAlive(lease), { code: 'LEASE_NOT_FOUND', data: { leaseId: lease } });
      } finally {
        await store.close();
      }
    }));

  test('the real clock expires a 1 s lease', () =>
    withTempDir(async (dir) => {
      const store = await EmbeddedStore.open({ path: join(dir, 'store.db') });
      try {
        const lease = await store.grantLease(1);
        await store.put('eph', 'v', { lease });
        const deleted = new Promise<readonly WatchEvent[]>((resolve) => {
          void store.watch('eph', {}, resolve);
        });
        const events = await deleted;
        assert.deepEqual(
          events.map((e) => [e.type, e.key]),
          [['delete', 'eph']],
        );
        assert.equal(await store.get('eph'), undefined);
      } finally {
        await store.close();
      }
    }));

  test('takes a value of the maximum size', () =>
    withTempDir(async (dir) => {
      const store = await EmbeddedStore.open({ path: join(dir, 'store.db') });
      try {
        const value = 'v'.repeat(MAX_VALUE_BYTES);
        await store.put('big', value);
        assert.equal((await store.get('big'))?.value.length, MAX_VALUE_BYTES);
      } finally {
        await store.close();
      }
    }));

  test('a throwing watch callback is logged and its watch goes on; close ends watches with UNAVAILABLE', () =>
    withTempDir(async (dir) => {
      const warnings: string[] = [];
      const store = await EmbeddedStore.open({ path: join(dir, 'store.db'), logger: { warn: (m) => warnings.push(m) } });
      const seen: string[] = [];
      const ended: Error[] = [];
      await store.watch('', { onError: (e) => ended.push(e) }, (events) => {
        seen.push(...events.map((e) => e.key));
        throw new Error('callback bug');
      });
      await store.put('a', '1');
      await store.put('b', '2');
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(seen, ['a', 'b']);
      assert.equal(warnings.length, 2);
      await store.close();
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(ended.length, 1);
      assert.equal((ended[0] as { code?: string }).code, 'UNAVAILABLE');
    }));
});
