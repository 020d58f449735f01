import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isDotmeshError } from '@dotmesh/core';
import { makeTempDir, pumpBinary, skipUnless, tcpPair } from '@dotmesh/testkit';
import { type DriverHarness, rejectsWithCode, runDriverConformance } from '../conformance.ts';
import { readAll } from '../conformance-util.ts';
import { createExec } from '../exec.ts';
import { BtrfsCli } from './btrfs-cli.ts';
import { BtrfsDriver } from './btrfs-driver.ts';
import { readMounts } from './mountinfo.ts';
import { destroyPool, loopDevicesOf, type OpenedPool, openPool } from './pool.ts';
import { ensurePoolFile } from './pool-format.ts';
import { acquirePoolLock } from './pool-lock.ts';
import { checkPump } from './pump.ts';
import { purge } from './recovery.ts';

const exec = createExec();
const cli = new BtrfsCli(exec);
const POOL_BYTES = 300 * 1024 * 1024;

describe('btrfs storage', { skip: skipUnless(['root', 'btrfs', 'losetup']) }, () => {
  let base = '';
  const pools: { poolFile: string; mountPoint: string; opened?: OpenedPool }[] = [];
  let roots = 0;

  const makePool = async (name: string, sparse: boolean) => {
    const p: (typeof pools)[number] = { poolFile: join(base, `${name}.img`), mountPoint: join(base, name) };
    pools.push(p);
    p.opened = await openPool({ poolFile: p.poolFile, mountPoint: p.mountPoint, sizeBytes: POOL_BYTES, sparse, exec });
    return p.opened;
  };

  let poolA: OpenedPool;
  let poolB: OpenedPool;
  before(async () => {
    base = await makeTempDir('storage');
    poolA = await makePool('a', true);
    poolB = await makePool('b', false);
  });
  after(async () => {
    for (const p of pools.reverse())
      await destroyPool({ poolFile: p.poolFile, mountPoint: p.mountPoint, exec }).catch((e) => console.error(e));
    if (base) await rm(base, { recursive: true, force: true });
  });

  /** A fresh pool root (a directory of pool A or B) with its own pool.json. */
  const freshDriver = async (pool: OpenedPool) => {
    const root = join(pool.root, `r${++roots}`);
    await mkdir(root);
    await ensurePoolFile(root);
    return new BtrfsDriver({ root, exec, pump: { binary: await pumpBinary() } });
  };
  const harness = (driver: BtrfsDriver, second?: () => Promise<DriverHarness>): DriverHarness => {
    const live = (v: string, rel: string) => join(driver.volumePath(v), rel);
    return {
      driver,
      async writeFile(v, rel, data) {
        await mkdir(dirname(live(v, rel)), { recursive: true });
        await writeFile(live(v, rel), data);
      },
      readFile: (v, rel) => readFile(live(v, rel)),
      readCommitFile: (v, c, rel) => readFile(join(driver.commitPath(v, c), rel)),
      removeFile: (v, rel) => rm(live(v, rel)),
      renamePath: (v, from, to) => rename(live(v, from), live(v, to)),
      removePath: (v, rel) => rm(live(v, rel), { recursive: true }),
      ...(second ? { makeSecondHarness: second } : {}),
      cleanup: () => purge(cli, driver.layout.root),
    };
  };

  runDriverConformance('btrfs', async () => {
    const seconds: DriverHarness[] = [];
    const h = harness(await freshDriver(poolA), async () => {
      const s = harness(await freshDriver(poolB));
      seconds.push(s);
      return s;
    });
    return {
      ...h,
      cleanup: async () => {
        for (const s of seconds) await s.cleanup();
        await h.cleanup();
      },
    };
  });

  describe('pool lifecycle', () => {
    test('openPool is idempotent: one loop device, one mount, same poolId; re-attaches after detach', async () => {
      const p = pools[0]!;
      const again = await openPool({ poolFile: p.poolFile, mountPoint: p.mountPoint, sizeBytes: POOL_BYTES, sparse: true, exec });
      assert.equal(again.poolId, poolA.poolId);
      assert.match(again.poolId, /^[0-9a-f]{16}$/);
      assert.equal(again.loopDevice, poolA.loopDevice);
      assert.deepEqual(await loopDevicesOf(exec, p.poolFile), [poolA.loopDevice]);
      assert.equal((await readMounts()).filter((m) => m.mountPoint === poolA.root).length, 1);
      assert.match((await readMounts()).find((m) => m.mountPoint === poolA.root)!.options, /noatime/);
      // the server stopping never unmounts; a reboot does: simulate it
      const q = { poolFile: join(base, 'c.img'), mountPoint: join(base, 'c') };
      pools.push(q);
      const first = await openPool({ ...q, sizeBytes: POOL_BYTES, sparse: true, exec });
      await writeFile(join(first.root, 'marker'), 'kept');
      await exec.run('umount', [first.root]);
      await exec.run('losetup', ['-d', first.loopDevice!]);
      const reopened = await openPool({ ...q, sizeBytes: POOL_BYTES, sparse: true, exec });
      assert.equal(reopened.poolId, first.poolId);
      assert.equal((await loopDevicesOf(exec, q.poolFile)).length, 1);
      assert.equal(await readFile(join(reopened.root, 'marker'), 'utf8'), 'kept');
      await destroyPool({ ...q, exec });
      assert.deepEqual(await loopDevicesOf(exec, pools[1]!.poolFile), [poolB.loopDevice]);
      assert.equal(
        (await readMounts()).some((m) => m.mountPoint === reopened.root),
        false,
      );
    });

    test('existingMount is used as is; newer formats are refused; migrations run in order', async () => {
      const dir = join(poolA.root, `existing${++roots}`);
      await mkdir(dir);
      const opened = await openPool({
        poolFile: '/nonexistent',
        mountPoint: '/nonexistent',
        sizeBytes: 0,
        sparse: true,
        existingMount: dir,
        exec,
      });
      assert.equal(opened.loopDevice, undefined);
      assert.equal(opened.formatVersion, 1);
      const steps: number[] = [];
      const migrated = await ensurePoolFile(dir, {
        target: 3,
        migrations: { 1: async () => void steps.push(1), 2: async () => void steps.push(2) },
      });
      assert.deepEqual(steps, [1, 2]);
      assert.equal(migrated.poolId, opened.poolId);
      assert.equal(JSON.parse(await readFile(join(dir, 'pool.json'), 'utf8')).formatVersion, 3);
      await rejectsWithCode(
        openPool({ poolFile: '', mountPoint: '', sizeBytes: 0, sparse: true, existingMount: dir, exec }),
        'UNSUPPORTED',
      );
      await rejectsWithCode(
        openPool({ poolFile: '', mountPoint: '', sizeBytes: 0, sparse: true, existingMount: base, exec }),
        'UNSUPPORTED',
      );
      await rejectsWithCode(
        new BtrfsDriver({ root: join(poolA.root, 'nopool'), exec, pump: { binary: await pumpBinary() } }).open(),
        'POOL_UNAVAILABLE',
      );
    });

    test('pool lock: a second locker fails at once; released on release() and on SIGKILL of the holder', async () => {
      const dir = join(base, 'lockdir');
      const lock = await acquirePoolLock(dir, 'node a, API at 127.0.0.1:1');
      await rejectsWithCode(acquirePoolLock(dir), 'UNAVAILABLE');
      // The refusal names the holder: its pid, host and its own words.
      await assert.rejects(acquirePoolLock(dir), (e: Error) =>
        e.message.includes(
          `already using the pool at ${dir}: pid ${process.pid} on host ${hostname()} (node a, API at 127.0.0.1:1) since `,
        ),
      );
      await lock.release();
      await (await acquirePoolLock(dir)).release();
      const lockModule = join(dirname(fileURLToPath(import.meta.url)), 'pool-lock.ts');
      const holder = spawn(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { acquirePoolLock } from ${JSON.stringify(lockModule)};
        await acquirePoolLock(${JSON.stringify(dir)}); console.log('locked'); setInterval(() => {}, 1000);`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      try {
        await new Promise<void>((resolve, reject) => {
          holder.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
          holder.once('exit', () => reject(new Error('lock holder exited')));
        });
        await rejectsWithCode(acquirePoolLock(dir), 'UNAVAILABLE');
      } finally {
        holder.kill('SIGKILL');
      }
      const deadline = Date.now() + 5000;
      for (;;) {
        try {
          await (await acquirePoolLock(dir)).release();
          break;
        } catch (e) {
          if (Date.now() > deadline) throw e;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    });
  });

  test('sizes() of every volume skips a folder whose live subvolume is not made yet (a volume being created)', async () => {
    const d = await freshDriver(poolA);
    await d.open();
    const h = harness(d);
    try {
      await d.createVolume('whole', {});
      await mkdir(d.layout.volume('half'), { recursive: true });
      assert.deepEqual([...(await d.sizes()).keys()], ['whole']);
      await assert.rejects(d.sizes(['half']), { code: 'BRANCH_NOT_FOUND' }, 'asked for by id, it is not a volume');
    } finally {
      await rm(d.layout.volume('half'), { recursive: true, force: true });
      await h.cleanup();
    }
  });

  describe('a read-only live (setLiveReadOnly, the fence of a node cut off from the cluster)', () => {
    test('a process writing into it gets EROFS; commit still works and keeps it read-only; rollback makes it writable', async () => {
      const d = await freshDriver(poolA);
      await d.open();
      const h = harness(d);
      try {
        await d.createVolume('ro', {});
        const file = join(d.volumePath('ro'), 'log');
        // A writer that opens the file for each line, as a shell's `>>` does.
        const writer = spawn('sh', ['-c', `while echo line >> '${file}'; do sleep 0.02; done`], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        writer.stderr.on('data', (b: Buffer) => {
          stderr += b.toString();
        });
        const exited = once(writer, 'exit');
        while ((await readFile(file, 'utf8').catch(() => '')).length === 0) await new Promise((r) => setTimeout(r, 20));
        assert.equal(await d.liveReadOnly('ro'), false);
        await d.setLiveReadOnly('ro', true);
        await exited;
        assert.match(stderr, /Read-only file system/, 'the writer was refused with EROFS');
        assert.equal(await d.liveReadOnly('ro'), true);
        await assert.rejects(writeFile(join(d.volumePath('ro'), 'new'), 'x'), { code: 'EROFS' });
        const { stdout } = await exec.run('btrfs', ['property', 'get', '-ts', d.volumePath('ro'), 'ro']);
        assert.equal(stdout.trim(), 'ro=true');
        const content = await readFile(file, 'utf8');
        await d.commit('ro', 'c1', { m: 1 });
        assert.equal(await d.liveReadOnly('ro'), true, 'a commit leaves it read-only');
        assert.equal(await readFile(join(d.commitPath('ro', 'c1'), 'log'), 'utf8'), content, 'the commit holds what was written');
        await d.rollback('ro', { volumeId: 'ro', commitId: 'c1' });
        assert.equal(await d.liveReadOnly('ro'), false, 'a rollback puts a writable copy in place');
        await writeFile(join(d.volumePath('ro'), 'after'), 'x');
        await d.setLiveReadOnly('ro', true);
        await d.setLiveReadOnly('ro', false);
        await writeFile(join(d.volumePath('ro'), 'again'), 'y');
        await d.setLiveReadOnly('ro', true);
        await d.deleteVolume('ro');
        assert.deepEqual(
          (await d.listVolumes()).map((v) => v.id),
          [],
        );
      } finally {
        await h.cleanup();
      }
    });
  });

  describe('crash recovery in open()', () => {
    const setup = async () => {
      const d = await freshDriver(poolA);
      await d.open();
      const h = harness(d);
      await d.createVolume('vol', { l: 1 });
      await h.writeFile('vol', 'f', 'one');
      await d.commit('vol', 'c1', {});
      await h.writeFile('vol', 'f', 'two');
      return { d, h, op: d.layout.staging('op1') };
    };
    const halfRollback = async (d: BtrfsDriver, op: string) => {
      await mkdir(op, { recursive: true });
      await writeFile(join(op, 'intent.json'), JSON.stringify({ kind: 'rollback', volumeId: 'vol', commitId: 'c1' }));
      await cli.snapshot(d.commitPath('vol', 'c1'), join(op, 'new'), { readonly: false });
    };

    test('rollback interrupted after moving the old live away is completed', async () => {
      const { d, h, op } = await setup();
      try {
        await halfRollback(d, op);
        await rename(d.volumePath('vol'), join(op, 'old'));
        const report = await d.open();
        assert.equal(report.actions.length, 1);
        assert.match(report.actions[0]!, /completed interrupted rollback of volume vol/);
        assert.equal(await readFile(join(d.volumePath('vol'), 'f'), 'utf8'), 'one');
        assert.equal((await d.sizes(['vol'])).get('vol')?.dirty, false);
        assert.deepEqual((await d.open()).actions, []);
      } finally {
        await h.cleanup();
      }
    });

    test('rollback interrupted before the swap is undone; with only old left, old is restored', async () => {
      const { d, h, op } = await setup();
      try {
        await halfRollback(d, op);
        assert.match((await d.open()).actions.join(), /undid interrupted rollback/);
        assert.equal(await readFile(join(d.volumePath('vol'), 'f'), 'utf8'), 'two');
        await mkdir(op, { recursive: true });
        await writeFile(join(op, 'intent.json'), JSON.stringify({ kind: 'rollback', volumeId: 'vol', commitId: 'c1' }));
        await rename(d.volumePath('vol'), join(op, 'old'));
        assert.match((await d.open()).actions.join(), /restored the live state of volume vol/);
        assert.equal(await readFile(join(d.volumePath('vol'), 'f'), 'utf8'), 'two');
      } finally {
        await h.cleanup();
      }
    });

    test('open() waits for btrfs processes a killed server left working on the pool', async () => {
      const { d, h, op } = await setup();
      await mkdir(op, { recursive: true });
      // A receive that blocks on its input, as one whose server was killed mid-stream.
      const orphan = spawn('btrfs', ['receive', op], { stdio: ['pipe', 'ignore', 'ignore'] });
      const gone = new Promise<void>((resolve) => orphan.once('exit', () => resolve()));
      try {
        await new Promise((r) => setTimeout(r, 200));
        let opened = false;
        const opening = d.open().then((report) => {
          opened = true;
          return report;
        });
        await new Promise((r) => setTimeout(r, 600));
        assert.equal(opened, false, 'recovery must not run beside a btrfs process on the pool');
        orphan.stdin.end();
        await gone;
        const { actions } = await opening;
        assert.match(actions.join('\n'), /discarded unfinished operation op1/);
      } finally {
        if (orphan.exitCode === null && orphan.signalCode === null) orphan.kill('SIGKILL');
        await gone;
        await h.cleanup();
      }
    });

    test('half-done delete, create and import are finished or discarded; stray meta makes no commit', async () => {
      const { d, h, op } = await setup();
      try {
        await d.createVolume('gone', {});
        await d.commit('gone', 'g1', {});
        await mkdir(d.layout.trashDir, { recursive: true });
        await rename(d.layout.volume('gone'), d.layout.trash('x-gone'));
        await mkdir(join(op, 'vol'), { recursive: true });
        await cli.create(join(op, 'vol', 'live'));
        await mkdir(d.layout.commitBox('vol', 'never'), { recursive: true });
        await writeFile(d.layout.importedSeq('vol', 'never'), '{"seq":9}');
        await h.writeFile(
          'vol',
          'dotmesh.metadata/stray.json',
          JSON.stringify({ formatVersion: 1, commitId: 'stray', seq: 5, meta: {} }),
        );
        const { actions } = await d.open();
        assert.equal(actions.length, 3, actions.join('\n'));
        assert.deepEqual(
          (await d.listVolumes()).map((v) => v.id),
          ['vol'],
        );
        assert.deepEqual(
          (await d.listCommits('vol')).map((c) => c.id),
          ['c1'],
        );
        const rootName = d.layout.root.split('/').at(-1)!;
        const left = (await cli.list(d.layout.root)).filter((e) => e.path.startsWith(`${rootName}/`));
        assert.deepEqual(left.map((e) => e.path.slice(rootName.length + 1)).sort(), ['fs/vol/commits/c1/c1', 'fs/vol/live']);
      } finally {
        await h.cleanup();
      }
    });
  });

  describe('commit streams over a socket (dotmesh-pump reads and writes it, not Node)', () => {
    const GO = Buffer.from('\n');
    /** The sending end: waits for the go byte, then lets the driver write the stream. */
    /** Two opened drivers, on pool A and pool B. */
    const twoDrivers = async () => {
      const pair = [harness(await freshDriver(poolA)), harness(await freshDriver(poolB))] as const;
      for (const h of pair) await h.driver.open();
      return pair;
    };
    const sendOnGo = async (send: () => Promise<void>, socket: Socket) => {
      await once(socket, 'data');
      await send();
    };

    test('a full and an incremental commit cross; Node reads none of their bytes; progress is reported', async () => {
      const [src, dst] = await twoDrivers();
      try {
        const big = Buffer.alloc(3 * 1024 * 1024 + 17, 9);
        await src.driver.createVolume('v', {});
        await src.writeFile('v', 'big', big);
        await src.driver.commit('v', 'c1', { n: 1 });
        await src.writeFile('v', 'small', 'two');
        await src.driver.commit('v', 'c2', { n: 2 });
        await dst.driver.createVolume('w', {});
        const d = dst.driver as BtrfsDriver;
        const s = src.driver as BtrfsDriver;
        for (const [commitId, parent] of [
          ['c1', undefined],
          ['c2', 'c1'],
        ] as const) {
          const { a, b, close } = await tcpPair();
          try {
            const seen: number[] = [];
            const [info] = await Promise.all([
              d.importCommitFrom('w', b, {
                idleTimeoutMs: 5000,
                onReady: () => b.write(GO),
                onProgress: (n) => seen.push(n),
                ...(parent ? { parent: { volumeId: 'w', commitId: parent } } : {}),
              }),
              sendOnGo(
                () =>
                  s.exportCommitTo('v', commitId, a, {
                    idleTimeoutMs: 5000,
                    ...(parent ? { parent: { volumeId: 'v', commitId: parent } } : {}),
                  }),
                a,
              ),
            ]);
            assert.equal(info.id, commitId);
            assert.equal(b.bytesRead, 0, 'the receiving Node read nothing');
            assert.equal(a.bytesWritten, 0, 'the sending Node wrote nothing');
            assert.ok(seen.length > 0 && seen.at(-1)! > 0, `progress ${seen}`);
          } finally {
            close();
          }
        }
        assert.deepEqual(
          (await d.listCommits('w')).map((c) => [c.id, c.meta]),
          [
            ['c1', { n: 1 }],
            ['c2', { n: 2 }],
          ],
        );
        assert.ok((await readFile(join(d.commitPath('w', 'c2'), 'big'))).equals(big));
        assert.equal(await readFile(join(d.commitPath('w', 'c2'), 'small'), 'utf8'), 'two');
      } finally {
        await src.cleanup();
        await dst.cleanup();
      }
    });

    test('a peer cut mid-stream or silent: refused in time, nothing visible, nothing staged', async () => {
      const [src, dst] = await twoDrivers();
      try {
        await src.driver.createVolume('v', {});
        await src.writeFile('v', 'big', Buffer.alloc(4 * 1024 * 1024, 1));
        await src.driver.commit('v', 'c1', {});
        const whole = await readAll(src.driver.exportCommit('v', 'c1'));
        const d = dst.driver as BtrfsDriver;
        await d.createVolume('w', {});
        // cut: half the stream, then the connection closes
        let pair = await tcpPair();
        const cut = d.importCommitFrom('w', pair.b, { idleTimeoutMs: 5000, onReady: () => pair.b.write(GO) });
        await once(pair.a, 'data');
        pair.a.end(whole.subarray(0, whole.length >> 1));
        await rejectsWithCode(cut, 'TRANSFER_CORRUPT');
        pair.close();
        // silent: a part of the stream, then nothing
        pair = await tcpPair();
        const started = Date.now();
        const silent = d.importCommitFrom('w', pair.b, { idleTimeoutMs: 700, onReady: () => pair.b.write(GO) });
        await once(pair.a, 'data');
        pair.a.write(whole.subarray(0, 100_000));
        await rejectsWithCode(silent, 'UNAVAILABLE');
        assert.ok(Date.now() - started < 10_000, 'within the idle timeout and a margin');
        pair.close();
        assert.deepEqual(await d.listCommits('w'), []);
        assert.deepEqual(await readdir(d.layout.stagingDir).catch(() => []), []);
      } finally {
        await src.cleanup();
        await dst.cleanup();
      }
    });

    test('a missing or foreign dotmesh-pump is refused with what to do', async () => {
      await assert.rejects(checkPump(exec, { binary: join(base, 'no-such-pump') }), (e: unknown) => {
        assert.ok(isDotmeshError(e) && e.code === 'UNAVAILABLE', String(e));
        assert.match(e.message, /cannot run dotmesh-pump/);
        assert.match(e.hint ?? '', /npm run build/);
        return true;
      });
      await assert.rejects(checkPump(exec, { binary: '/bin/echo' }), /not dotmesh-pump 1/);
      await checkPump(exec, { binary: await pumpBinary() });
    });
  });
});
