/**
 * Measures what btrfs quotas (qgroups) cost for the figures they would affect (targets.md
 * P1 commit latency, P6 listing 1,000 volumes, P7 commit throughput) against the same
 * operations with quotas off, plus what each way of sizing volumes costs: `btrfs filesystem
 * du` (walks files; what the driver uses) versus `btrfs qgroup show` (instant, needs quotas).
 * The result decided how the btrfs driver sizes volumes: see docs/decisions.md.
 *
 * Usage: node bench/src/quota-choice.ts [--smoke] [--out FILE]
 * Needs root and btrfs. Works in a temp dir under $DOTMESH_TEST_ROOT (else the OS temp dir), on
 * its own loop pools, and removes them.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TEST_NAME_PREFIX, testRoot } from '@dotmesh/testkit';

const smoke = process.argv.includes('--smoke');
const outIndex = process.argv.indexOf('--out');
const outFile = outIndex >= 0 ? process.argv[outIndex + 1] : undefined;
const VOLUMES = smoke ? 50 : 1000;
const SNAPSHOTS = smoke ? 20 : 200;
const LATENCY_SAMPLES = smoke ? 5 : 30;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function timeMs(fn: () => void): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

function p50(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

interface Result {
  quotas: boolean;
  p1SnapshotAfter4kSyncP50Ms: number;
  p1SnapshotWith100MiBUnflushedP50Ms: number;
  p6ListSubvolumesMs: number;
  p6SizeAllByDuMs: number;
  p6SizeAllByQgroupMs: number | null;
  p7SnapshotsPerSecond: number;
}

function measure(quotas: boolean): Result {
  const dir = mkdtempSync(join(testRoot(), `${TEST_NAME_PREFIX}quota-bench-`));
  const img = join(dir, 'pool.img');
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  sh('truncate', ['-s', smoke ? '2G' : '8G', img]);
  sh('mkfs.btrfs', ['-q', img]);
  const loop = sh('losetup', ['-f', '--show', img]).trim();
  try {
    sh('mount', ['-o', 'noatime', loop, mnt]);
    if (quotas) sh('btrfs', ['quota', 'enable', mnt]);
    const vol = join(mnt, 'vol');
    sh('btrfs', ['subvolume', 'create', vol]);
    writeFileSync(join(vol, 'base'), Buffer.alloc(4 << 20, 1));
    const lat: number[] = [];
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      writeFileSync(join(vol, 'small'), Buffer.alloc(4096, i));
      sh('sync', ['-f', vol]);
      lat.push(timeMs(() => sh('btrfs', ['subvolume', 'snapshot', '-r', vol, join(mnt, `s${i}`)])));
    }
    const big: number[] = [];
    for (let i = 0; i < Math.max(3, LATENCY_SAMPLES / 5); i++) {
      writeFileSync(join(vol, 'big'), Buffer.alloc(100 << 20, i + 1));
      big.push(timeMs(() => sh('btrfs', ['subvolume', 'snapshot', '-r', vol, join(mnt, `b${i}`)])));
    }
    for (let i = 0; i < VOLUMES; i++) sh('btrfs', ['subvolume', 'create', join(mnt, `v${i}`)]);
    const list = timeMs(() => sh('btrfs', ['subvolume', 'list', '-g', '-c', '-u', '-q', mnt]));
    const lives = Array.from({ length: VOLUMES }, (_, i) => join(mnt, `v${i}`));
    const du = timeMs(() => sh('btrfs', ['filesystem', 'du', '-s', '--raw', ...lives]));
    const qg = quotas ? timeMs(() => sh('btrfs', ['qgroup', 'show', '--raw', mnt])) : null;
    const start = process.hrtime.bigint();
    for (let i = 0; i < SNAPSHOTS; i++) sh('btrfs', ['subvolume', 'snapshot', '-r', vol, join(mnt, `t${i}`)]);
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    return {
      quotas,
      p1SnapshotAfter4kSyncP50Ms: p50(lat),
      p1SnapshotWith100MiBUnflushedP50Ms: p50(big),
      p6ListSubvolumesMs: list,
      p6SizeAllByDuMs: du,
      p6SizeAllByQgroupMs: qg,
      p7SnapshotsPerSecond: SNAPSHOTS / secs,
    };
  } finally {
    execFileSync('umount', [mnt], { stdio: 'ignore' });
    execFileSync('losetup', ['-d', loop], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  }
}

const results = [measure(false), measure(true)];
const fmt = (n: number | null) => (n === null ? '-' : n.toFixed(1));
console.log(`volumes=${VOLUMES} snapshots=${SNAPSHOTS} samples=${LATENCY_SAMPLES}${smoke ? ' (smoke)' : ''}`);
console.log('quotas | P1 4k p50 ms | P1 100MiB p50 ms | P6 list ms | P6 du ms | P6 qgroup ms | P7 snaps/s');
for (const r of results) {
  console.log(
    `${r.quotas ? 'on ' : 'off'}    | ${fmt(r.p1SnapshotAfter4kSyncP50Ms)} | ${fmt(r.p1SnapshotWith100MiBUnflushedP50Ms)} | ${fmt(r.p6ListSubvolumesMs)} | ${fmt(r.p6SizeAllByDuMs)} | ${fmt(r.p6SizeAllByQgroupMs)} | ${fmt(r.p7SnapshotsPerSecond)}`,
  );
}
if (outFile) {
  writeFileSync(outFile, `${JSON.stringify({ date: new Date().toISOString(), smoke, volumes: VOLUMES, results }, null, 2)}\n`);
}
