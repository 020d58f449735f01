import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, makeTempDir, skipUnless } from '@dotmesh/testkit';
import { initCluster, type TestCluster } from './cluster-harness.ts';

/**
 * What the built `dm` prints against a real server (btrfs pool, `dm cluster init`) is about
 * the branch it names: 20 MiB written but not committed on `experiment`, whose history is 2
 * commits while master has 4, must read as such in `dm list` and `dm dot show` — not as
 * master's clean 4 commits. `dm checkout -b` says what it leaves behind (or takes it along
 * with --carry), `dm diff` takes git's references, `dm log` shows readable dates.
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);
const MIB = 1024 * 1024;

describe('dm output against a real server', { skip }, () => {
  const cleanup = new Cleanup();
  let c: TestCluster;
  let mnt: string;
  const data = () => join(mnt, 'shop');
  const commit = async (file: string, text: string, message: string) => {
    await writeFile(join(data(), file), text);
    return (await c.ok(['commit', '-m', message])).trim();
  };

  before(async () => {
    c = await initCluster(cleanup);
    mnt = await makeTempDir('mnt-', cleanup);
    await c.ok(['init', 'shop']);
    await c.ok(['mount', 'shop', data()]);
    await commit('a.txt', 'A', 'two'); // master: Initial commit, two
    await c.ok(['checkout', '-b', 'experiment']); // experiment: 2 commits
    await c.ok(['checkout', 'master']);
    await commit('b.txt', 'B', 'three');
    await commit('c.txt', 'C', 'four'); // master: 4 commits
    await c.ok(['checkout', 'experiment']);
    await writeFile(join(data(), 'big.bin'), Buffer.alloc(20 * MIB, 7)); // not committed
  });
  after(async () => cleanup.run());

  test('dm list: BRANCH experiment with its own commits and 20 MiB dirty, not master’s figures', async () => {
    const out = await c.ok(['list']);
    const row = out.split('\n').find((l) => l.startsWith('* shop')) ?? '';
    const [, branch, , size, commits, dirty] =
      /^\* shop +(\S+) +(\S+) +(\d+\.\d\d [kMG]iB) +(\d+) +(\d+\.\d\d [kMG]iB)$/.exec(row) ?? [];
    assert.equal(branch, 'experiment', out);
    assert.equal(commits, '2', out);
    assert.ok(size?.endsWith('MiB') && dirty?.endsWith('MiB'), out);
    const scripted = (await c.ok(['list', '-H'])).split('\n').find((l) => l.startsWith('shop\t')) ?? '';
    const [, , , , sizeBytes, commitCount, dirtyBytes] = scripted.split('\t');
    assert.equal(commitCount, '2');
    assert.ok(Number(dirtyBytes) >= 20 * MIB, scripted);
    assert.ok(Number(sizeBytes) >= 20 * MIB, scripted);
  });

  test('dm dot show: names experiment, its 2 commits and its dirty data; master’s 4 in --json', async () => {
    const out = await c.ok(['dot', 'show']);
    assert.match(out, /\nCurrent branch: experiment\nCommits: 2\nDot size: \d+\.\d\d MiB \(\d+\.\d\d MiB dirty\)\n/);
    const json = JSON.parse(await c.ok(['--json', 'dot', 'show'])) as {
      commitCount: number;
      dirtyBytes: number;
      branches: { name: string; commitCount: number; dirtyBytes: number }[];
    };
    assert.equal(json.commitCount, 2);
    assert.ok(json.dirtyBytes >= 20 * MIB);
    const master = json.branches.find((b) => b.name === 'master');
    assert.equal(master?.commitCount, 4);
    assert.equal(master?.dirtyBytes, 0);
  });

  test('dm checkout -b warns that uncommitted changes stay behind; they do', async () => {
    const r = await c.dm(['checkout', '-b', 'left']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /^warning: \d+\.\d\d MiB of uncommitted changes stayed on branch experiment \(`dm checkout experiment` shows them\): left starts from the last commit of experiment\. .*--carry\.\n$/,
    );
    await assert.rejects(stat(join(data(), 'big.bin')), { code: 'ENOENT' });
    await c.ok(['checkout', 'experiment']);
    assert.equal((await stat(join(data(), 'big.bin'))).size, 20 * MIB);
  });

  test('dm checkout -b --carry takes them along and leaves the old branch at its last commit', async () => {
    const before = (await c.ok(['log'])).match(/^commit /gm)?.length;
    const r = await c.dm(['checkout', '-b', 'carried', '--carry']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.equal((await stat(join(data(), 'big.bin'))).size, 20 * MIB, 'the new branch has them');
    assert.match(await c.ok(['log']), /\n {4}Uncommitted changes of experiment, carried to carried\n/);
    assert.match(await c.ok(['dot', 'show']), /\nCurrent branch: carried\nCommits: 3\nDot size: .* \(all clean\)\n/);
    await c.ok(['checkout', 'experiment']);
    await assert.rejects(stat(join(data(), 'big.bin')), { code: 'ENOENT' });
    assert.equal((await c.ok(['log'])).match(/^commit /gm)?.length, before, 'experiment keeps its own history');
    assert.match(await c.ok(['dot', 'show']), /\nCommits: 2\nDot size: .* \(all clean\)\n/);
  });

  test('dm diff: HEAD~N and branch names, as git', async () => {
    await c.ok(['checkout', 'master']);
    await writeFile(join(data(), 'c.txt'), 'C changed');
    assert.equal(await c.ok(['diff']), 'M\t__default__/c.txt\n');
    assert.equal(await c.ok(['diff', 'HEAD~1']), '+\t__default__/c.txt\n', 'the working copy against "three"');
    assert.equal(await c.ok(['diff', 'HEAD~2', 'HEAD']), '+\t__default__/b.txt\n+\t__default__/c.txt\n');
    assert.equal(await c.ok(['diff', 'HEAD^^', 'HEAD~1']), '+\t__default__/b.txt\n');
    assert.equal(await c.ok(['diff', 'experiment', 'master']), '+\t__default__/b.txt\n+\t__default__/c.txt\n');
    assert.equal(await c.ok(['diff', 'carried~1', 'carried']), '+\t__default__/big.bin\n');
    const far = await c.dm(['diff', 'HEAD~9']);
    assert.equal(far.code, 3);
    await c.ok(['reset', '--hard', 'HEAD']);
    assert.equal(await readFile(join(data(), 'c.txt'), 'utf8'), 'C');
  });

  test('dm log: readable local dates; --json keeps the nanoseconds', async () => {
    const log = await c.dm(['log'], { env: { TZ: 'UTC' } });
    const dates = [...log.stdout.matchAll(/^date: (.*)$/gm)].map((m) => m[1] ?? '');
    assert.equal(dates.length, 4);
    for (const d of dates) assert.match(d, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000$/);
    const json = JSON.parse(await c.ok(['--json', 'log'])) as { commits: { metadata: { timestamp: string } }[] };
    const ns = json.commits.at(-1)?.metadata.timestamp ?? '';
    assert.match(ns, /^\d{19}$/);
    const seconds = new Date(Number(BigInt(ns) / 1_000_000n)).toISOString().slice(0, 19).replace('T', ' ');
    assert.equal(dates.at(-1), `${seconds} +0000`);
  });
});
