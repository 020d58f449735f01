import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, skipUnless } from '@dotmesh/testkit';
import { type DockerCluster, startDockerCluster } from './docker-harness.ts';

/**
 * The original Dotmesh's Docker scenarios (original-dotmesh.md §14, TestSingleNode and
 * TestDeletionSimple) against a real dockerd using our volume plugin, driven by the built `dm`
 * and Debian's docker CLI. Listings use `ls` of each directory (the image has no `find`).
 */
const skip = skipUnless(['root', 'btrfs', 'losetup', 'netns', 'docker']);

let counter = 0;
const uniq = (base: string) => `${base}${++counter}${process.pid % 1000}`;

describe('Docker volume plugin: ported scenarios', { skip }, () => {
  const cleanup = new Cleanup();
  let d: DockerCluster;
  before(async () => {
    d = await startDockerCluster(cleanup);
  });
  after(async () => cleanup.run());

  const dm = (args: readonly string[]) => d.c.ok(args);
  const startedAt = async (container: string) => (await d.docker(['inspect', '-f', '{{.State.StartedAt}}', container])).trim();
  /** `docker run -d` of a bare `sleep` as PID 1 on `volume` at /foo: SIGTERM does not stop it (Docker kills it after 10 s). */
  const startSleeper = (name: string, volume: string, flags: readonly string[] = []) =>
    d.docker([
      'run',
      '-d',
      ...flags,
      '--name',
      name,
      '--network',
      'none',
      '-v',
      `${volume}:/foo`,
      '--volume-driver',
      d.driver,
      d.image,
      'sleep',
      '100000',
    ]);

  test('RunningContainerTwice: data persists between two containers', async () => {
    const dot = uniq('twice');
    await d.run(dot, 'echo hello > /foo/HELLO');
    assert.equal(await d.run(dot, 'cat /foo/HELLO'), 'hello\n');
    assert.match(await dm(['list']), new RegExp(`\\b${dot}\\s+master\\b`));
  });

  test('docker volume create -d makes the dot; ls and inspect see it', async () => {
    const dot = uniq('created');
    await d.docker(['volume', 'create', '-d', d.driver, dot]);
    assert.match(await dm(['list']), new RegExp(`\\b${dot}\\b`));
    const ls = await d.docker(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']);
    assert.ok(ls.split('\n').includes(`${d.driver} ${dot}`), ls);
    const mountpoint = (await d.docker(['volume', 'inspect', '-f', '{{.Mountpoint}}', dot])).trim();
    assert.match(mountpoint, new RegExp(`/admin/${dot}/__default__$`));
  });

  test('ImportDockerImage: Docker copies the image contents into a fresh dot, once', async () => {
    const dot = uniq('imported');
    const seeded = `seeded${counter}`;
    await d.docker([
      'run',
      '--name',
      `${seeded}-src`,
      '--network',
      'none',
      d.image,
      'sh',
      '-c',
      'mkdir -p /etc/app && echo root:x:0 > /etc/app/passwd',
    ]);
    await d.docker(['commit', `${seeded}-src`, seeded]);
    await d.docker(['rm', `${seeded}-src`]);
    const first = await d.docker([
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      `${dot}:/etc/app`,
      '--volume-driver',
      d.driver,
      seeded,
      'cat',
      '/etc/app/passwd',
    ]);
    assert.equal(first, 'root:x:0\n');
    await d.run(dot, 'echo changed > /foo/passwd');
    const again = await d.docker([
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      `${dot}:/etc/app`,
      '--volume-driver',
      d.driver,
      seeded,
      'cat',
      '/etc/app/passwd',
    ]);
    assert.equal(again, 'changed\n', 'a reused dot is not overwritten by the image');
  });

  test('Branch: checkout changes what a container sees', async () => {
    const dot = uniq('branchy');
    await d.run(dot, 'touch /foo/X');
    await dm(['switch', dot]);
    await dm(['commit', '-m', 'hello']);
    await dm(['checkout', '-b', 'branch1']);
    await d.run(dot, 'touch /foo/Y');
    await dm(['commit', '-m', 'there']);
    assert.match(await dm(['log']), /there/);
    await dm(['checkout', 'master']);
    assert.equal(await d.run(dot, 'ls /foo'), 'X\n');
    await dm(['checkout', 'branch1']);
    assert.equal(await d.run(dot, 'ls /foo'), 'X\nY\n');
  });

  test('Reset: reset --hard rolls back and restarts the running container', async () => {
    const dot = uniq('resettable');
    const sleeper = uniq('sleeper');
    await d.start(sleeper, dot);
    const initialStart = await startedAt(sleeper);
    await d.run(dot, 'touch /foo/X');
    await dm(['switch', dot]);
    await dm(['commit', '-m', 'hello']);
    await d.run(dot, 'touch /foo/Y');
    await dm(['commit', '-m', 'again']);
    await dm(['reset', '--hard', 'HEAD^']);
    assert.doesNotMatch(await dm(['log']), /again/);
    assert.equal(await d.run(dot, 'ls /foo'), 'X\n');
    assert.notEqual(await startedAt(sleeper), initialStart, 'the container was restarted');
    assert.equal(
      (await d.docker(['exec', sleeper, 'ls', '/foo'])).trim(),
      'X',
      'the restarted container sees the rolled-back data',
    );
  });

  test('Reset and checkout refuse, naming them, when a container runs with --rm', async () => {
    const dot = uniq('ephemeral');
    const name = uniq('eph');
    await d.run(dot, 'touch /foo/X');
    await dm(['switch', dot]);
    await dm(['commit', '-m', 'one']);
    await startSleeper(name, dot, ['--rm']);
    const before = await startedAt(name);
    for (const args of [
      ['reset', '--hard', 'HEAD'],
      ['checkout', '-b', 'other'],
    ]) {
      const r = await d.c.dm(args);
      assert.notEqual(r.code, 0, `dm ${args.join(' ')} succeeded`);
      assert.match(r.stderr, new RegExp(`--rm.*/${name}`));
    }
    assert.equal(await startedAt(name), before, 'the container was left alone');
    await d.docker(['rm', '-f', name]);
  });

  test('RunningContainersListed: dm list, dm dot show, Containers and ListWithContainers', async () => {
    const dot = uniq('listed');
    const tester = uniq('tester');
    await d.start(tester, dot);
    assert.match(await dm(['list']), new RegExp(`\\b${dot}\\b.*/${tester}\\b`));
    const client = await d.c.client();
    const containers = await client.call('Containers', { Namespace: 'admin', Name: dot, Branch: '' });
    const id = (await d.docker(['inspect', '-f', '{{.Id}}', tester])).trim();
    assert.deepEqual(containers, [{ Name: `/${tester}`, Id: id }]);
    const all = await client.call('ListWithContainers', null);
    assert.deepEqual(all.admin?.[dot]?.Containers, [{ Name: `/${tester}`, Id: id }]);
    await dm(['switch', dot]);
    assert.match(await dm(['dot', 'show']), new RegExp(`/${tester}`));
  });

  test('BranchPinning: dot@branch pins a branch', async () => {
    const dot = uniq('pinned');
    await d.run(dot, 'touch /foo/HELLO-ORIGINAL');
    await dm(['switch', dot]);
    await dm(['commit', '-m', 'original']);
    for (const b of ['branch1', 'branch2', 'branch3']) {
      await dm(['checkout', 'master']);
      await dm(['checkout', '-b', b]);
      await d.run(dot, `touch /foo/HELLO-${b.toUpperCase()}`);
      await dm(['commit', '-m', `${b}commit1`]);
    }
    for (const b of ['branch1', 'branch2', 'branch3']) {
      assert.equal(await d.run(`${dot}@${b}`, 'ls /foo'), `HELLO-${b.toUpperCase()}\nHELLO-ORIGINAL\n`);
    }
    // `@master` is the same as no branch (as the original): the branch containers follow.
    assert.equal(await d.run(`${dot}@master`, 'ls /foo'), 'HELLO-BRANCH3\nHELLO-ORIGINAL\n');
  });

  test('Subdots: .name and .__root__', async () => {
    const dot = uniq('subdots');
    for (const sub of ['frogs', 'eat', 'flies']) await d.run(`${dot}.${sub}`, `touch /foo/HELLO-${sub.toUpperCase()}`);
    await d.run(`${dot}.__root__`, 'touch /foo/HELLO-ROOT');
    assert.equal(
      await d.run(`${dot}.__root__`, 'ls /foo /foo/eat /foo/flies /foo/frogs'),
      rootListing(['eat', 'flies', 'frogs']),
    );
  });

  test('DefaultSubdot: a plain name is the __default__ subdot', async () => {
    const dot = uniq('defaulted');
    await d.run(dot, 'touch /foo/HELLO-DEFAULT');
    await d.run(`${dot}.__root__`, 'touch /foo/HELLO-ROOT');
    assert.equal(
      await d.run(`${dot}.__root__`, 'ls /foo/__default__; ls /foo'),
      'HELLO-DEFAULT\nHELLO-ROOT\n__default__\ndotmesh.metadata\n',
    );
  });

  test('ConcurrentSubdots: four containers on one dot, followed across a branch and back', async () => {
    const dot = uniq('concurrent');
    const subs = ['frogs', 'eat', 'flies'];
    const names: string[] = [];
    for (const sub of [...subs, '__root__']) {
      const name = `${dot}_${sub.replace(/_/g, '')}`;
      names.push(name);
      await d.start(name, `${dot}.${sub}`, `touch /foo/HELLO-${sub === '__root__' ? 'ROOT' : sub.toUpperCase()}`);
    }
    const list = await dm(['list']);
    for (const name of names) assert.match(list, new RegExp(`/${name}\\b`));
    assert.match(list, /\/[a-z0-9]+_[a-z]+,\/[a-z0-9]+_[a-z]+,\/[a-z0-9]+_[a-z]+,\/[a-z0-9]+_[a-z]+/);
    const listing = 'ls /foo /foo/eat /foo/flies /foo/frogs';
    assert.equal(await d.run(`${dot}.__root__`, listing), rootListing(subs));
    await dm(['switch', dot]);
    await dm(['commit', '-m', 'pod-commit']);
    const before = await Promise.all(names.map(startedAt));
    await dm(['checkout', '-b', 'branch']); // restarts the containers
    await d.run(`${dot}@branch.again`, 'touch /foo/HELLO-AGAIN');
    await dm(['commit', '-m', 'branch-commit']);
    assert.equal(
      await d.run(`${dot}@branch.__root__`, `ls /foo/again; ${listing}`),
      `HELLO-AGAIN\n${rootListing(['again', ...subs])}`,
    );
    await dm(['checkout', 'master']); // restarts the containers
    assert.equal(await d.run(`${dot}.__root__`, listing), rootListing(subs));
    const afterStarts = await Promise.all(names.map(startedAt));
    for (let i = 0; i < names.length; i++) assert.notEqual(afterStarts[i], before[i], `${names[i]} was restarted`);
    const running = await d.docker(['ps', '--filter', `name=${dot}_`, '--format', '{{.Names}}']);
    assert.equal(running.trim().split('\n').length, 4, running);
  });

  test('SubdotSwitch: running containers follow checkout, subdots included', async () => {
    const dot = uniq('switchy');
    await dm(['init', dot]);
    await dm(['switch', dot]);
    await dm(['commit', '-m', 'initial empty commit']);
    for (const b of ['A', 'B']) {
      await dm(['checkout', 'master']);
      await dm(['checkout', '-b', `branch_${b}`]);
      await d.run(`${dot}@branch_${b}.frogs`, `echo ${b}_FROGS > /foo/HELLO`);
      await d.run(`${dot}@branch_${b}`, `echo ${b}_DEFAULT > /foo/HELLO`);
      await dm(['commit', '-m', `branch ${b} commit`]);
    }
    await dm(['checkout', 'master']);
    const frogs = `${dot}_frogs`;
    const dflt = `${dot}_default`;
    await d.start(frogs, `${dot}.frogs`);
    await d.start(dflt, dot);
    for (const b of ['B', 'A']) {
      await dm(['checkout', `branch_${b}`]);
      assert.equal(await d.docker(['exec', frogs, 'cat', '/foo/HELLO']), `${b}_FROGS\n`);
      assert.equal(await d.docker(['exec', dflt, 'cat', '/foo/HELLO']), `${b}_DEFAULT\n`);
    }
  });

  test('SharedBranch: checkout never moves a container onto data another running container uses', async () => {
    const dot = uniq('shared');
    await d.run(dot, 'echo master > /foo/WHO');
    await dm(['switch', dot]);
    await dm(['commit', '-m', 'master']);
    await dm(['checkout', '-b', 'b1']);
    await d.run(dot, 'echo b1 > /foo/WHO');
    await dm(['commit', '-m', 'b1']);
    await dm(['checkout', 'master']);
    const db = uniq('db');
    const logger = uniq('logger');
    await d.start(db, dot);
    await d.start(logger, `${dot}.logs`);
    const running = async (name: string) => (await d.docker(['inspect', '-f', '{{.State.Running}}', name])).trim();
    const refused = async (names: RegExp) => {
      const r = await d.c.dm(['checkout', 'b1']);
      assert.equal(r.code, 5, `dm checkout b1: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, names);
      assert.match(r.stderr, /--stop-others b1/);
      assert.match(await dm(['branch']), /^\* master$/m, 'the current branch did not change');
    };

    // The same subdot of the branch: refused, naming the follower on it and the pinned container.
    const pinnedLogs = uniq('pinnedlogs');
    await d.start(pinnedLogs, `${dot}@b1.logs`);
    const started = await Promise.all([db, logger, pinnedLogs].map(startedAt));
    await refused(
      new RegExp(
        `Cannot switch admin/${dot} to branch b1: /${logger} would use the same data as /${pinnedLogs}, already running on b1`,
      ),
    );
    assert.deepEqual(await Promise.all([db, logger, pinnedLogs].map(startedAt)), started, 'nothing was stopped');
    assert.equal(await d.docker(['exec', db, 'cat', '/foo/WHO']), 'master\n');
    await d.docker(['rm', '-f', pinnedLogs]);

    // Another subdot of the branch: no shared directory, so the followers move and it stays.
    const pinnedData = uniq('pinneddata');
    await d.start(pinnedData, `${dot}@b1.data`);
    const dataStarted = await startedAt(pinnedData);
    await dm(['checkout', 'b1']);
    assert.equal(await d.docker(['exec', db, 'cat', '/foo/WHO']), 'b1\n');
    assert.equal(await startedAt(pinnedData), dataStarted, 'the pinned container was left alone');
    await dm(['checkout', 'master']);

    // The whole dot overlaps every subdot: refused for both followers; --stop-others stops it for good.
    const pinnedRoot = uniq('pinnedroot');
    await d.start(pinnedRoot, `${dot}@b1.__root__`);
    await refused(new RegExp(`/${db}, /${logger} would use the same data as /${pinnedRoot}, already running on b1`));
    assert.equal(await running(pinnedRoot), 'true');
    await dm(['checkout', '--stop-others', 'b1']);
    assert.equal(await running(pinnedRoot), 'false', 'the pinned container was stopped');
    assert.equal(await running(pinnedData), 'true', 'a container on another subdot was not');
    assert.equal(await startedAt(pinnedData), dataStarted);
    assert.equal(await d.docker(['exec', db, 'cat', '/foo/WHO']), 'b1\n');
    assert.match(await dm(['branch']), /^\* b1$/m);
    await d.docker(['rm', '-f', db, logger, pinnedData, pinnedRoot]);
  });

  test('A container started on a branch while it is being reset makes the reset refuse, data untouched', async () => {
    const dot = uniq('racy');
    await d.run(dot, 'echo committed > /foo/F');
    await dm(['switch', dot]);
    await dm(['commit', '-m', 'one']);
    await d.run(dot, 'echo uncommitted > /foo/F');
    // Stopping it takes Docker's 10-second grace period: time to start another meanwhile.
    const slow = uniq('slow');
    await startSleeper(slow, dot);
    const reset = d.c.dm(['reset', '--hard', 'HEAD']);
    const deadline = Date.now() + 30_000;
    const stopping = new RegExp(`"what":"reset admin/${dot}".*"msg":"stopping containers"`);
    while (!stopping.test(await d.c.log())) {
      assert.ok(Date.now() < deadline, 'the reset did not start stopping the container');
      await new Promise((r) => setTimeout(r, 100));
    }
    const newcomer = uniq('newcomer');
    await d.start(newcomer, dot);
    const r = await reset;
    assert.equal(r.code, 5, `dm reset: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`Cannot reset admin/${dot}: /${newcomer} started on the branch while it was being reset`));
    assert.equal(await d.docker(['exec', newcomer, 'cat', '/foo/F']), 'uncommitted\n', 'nothing was rolled back');
    assert.equal((await d.docker(['inspect', '-f', '{{.State.Running}}', slow])).trim(), 'true', 'the stopped one runs again');
    await d.docker(['rm', '-f', slow, newcomer]);
  });

  test('DeleteInUseFails: dm dot delete refuses at once while a container uses the dot; then it removes the links', async () => {
    const dot = uniq('inuse');
    const user = uniq('user');
    await d.start(user, dot);
    const failedDeletes = async () => {
      const text = await (await fetch(`http://127.0.0.1:${d.c.port}/metrics`)).text();
      return Number(/^dm_state_transition_total\{op="delete",result="error"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    const before = await failedDeletes();
    const r = await d.c.dm(['dot', 'delete', '-f', dot]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, new RegExp(`containers are using it: /${user}\\n`));
    assert.equal(await failedDeletes(), before + 1, 'one refusal, no retries: running containers do not go away by waiting');
    assert.match(await dm(['list']), new RegExp(`\\b${dot}\\b`));
    const links = join(d.c.poolDir, 'container_mnt', 'admin');
    assert.ok((await readdir(links)).includes(dot), 'the container mounted the dot through its link');
    await d.docker(['rm', '-f', user]);
    await dm(['dot', 'delete', '-f', dot]);
    assert.doesNotMatch(await dm(['list']), new RegExp(`\\b${dot}\\b`));
    const left = await readdir(links).catch(() => [] as string[]);
    assert.deepEqual(
      left.filter((e) => e === dot || e.startsWith(`${dot}@`)),
      [],
      'dm dot delete removed the dot’s container_mnt links',
    );
  });
});

/** `ls /foo /foo/<sub>...` of a root with HELLO-ROOT and one HELLO-<SUB> file per subdot. */
function rootListing(subs: readonly string[]): string {
  const sorted = [...subs].sort();
  // dotmesh.metadata: each commit's metadata lives in the dot's root (docs/on-disk-format.md).
  // __default__: made with the dot.
  const top = `/foo:\nHELLO-ROOT\n${['__default__', 'dotmesh.metadata', ...sorted].sort().join('\n')}\n`;
  return (
    top +
    sorted
      .filter((s) => s !== 'again')
      .map((s) => `\n/foo/${s}:\nHELLO-${s.toUpperCase()}\n`)
      .join('')
  );
}
