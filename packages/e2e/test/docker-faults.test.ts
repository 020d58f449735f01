import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { Cleanup, type DockerEngine, skipUnless, startDockerd } from '@dotmesh/testkit';
import { type Cluster, dotId, type Federation, readData, registerUser, startFederation, writeData } from './transfer-harness.ts';

/**
 * The Docker volume plugin under faults and hostile input: one real dockerd uses the plugins
 * of two clusters (two network-namespace hosts, each server a process of the built bundle).
 * cluster_1's plugin acts as admin; cluster_0's acts as the user alice, so it gets alice's
 * permission errors. Covers: hostile volume names and requests on the plugin socket, another
 * user's dot, incoming push and pull while containers use the dot, the server killed while
 * containers run, and dockerd restarting while volumes are mounted.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'docker']);

describe('Docker volume plugin: faults and hostile input', { skip }, () => {
  const cleanup = new Cleanup();
  let fed: Federation;
  let c0: Cluster;
  let c1: Cluster;
  let engine: DockerEngine;
  let image: string;
  const tag = randomBytes(3).toString('hex');
  const driver0 = `dmt${tag}a`;
  const driver1 = `dmt${tag}b`;
  const socketOf = (driver: string) => `/run/docker/plugins/${driver}.sock`;

  before(async () => {
    engine = await startDockerd({ cleanup });
    image = await engine.importBusybox();
    for (const d of [driver0, driver1]) cleanup.add(() => rm(socketOf(d), { force: true }), `remove ${socketOf(d)}`);
    fed = await startFederation(cleanup, ['cluster_0', 'cluster_1'], {
      extraConfig: (i) => ({
        dockerPluginSocket: socketOf(i === 0 ? driver0 : driver1),
        dockerSocket: engine.socket,
        ...(i === 0 ? { dockerPluginUser: 'alice' } : {}),
      }),
    });
    [c0, c1] = fed.clusters as [Cluster, Cluster];
    cleanup.add(async () => {
      const { stdout } = await engine.docker(['ps', '-aq']).catch(() => ({ stdout: '' }));
      const ids = stdout.split('\n').filter((l) => l !== '');
      if (ids.length > 0) await engine.docker(['rm', '-f', ...ids]).catch(() => undefined);
    }, 'remove containers');
  });
  after(() => cleanup.run());

  const runArgs = (driver: string, volume: string, flags: readonly string[] = []) => [
    'run',
    '--network',
    'none',
    '-v',
    `${volume}:/foo`,
    '--volume-driver',
    driver,
    ...flags,
    image,
  ];
  const run = async (driver: string, volume: string, script: string) =>
    (await engine.docker([...runArgs(driver, volume, ['--rm']), 'sh', '-c', script])).stdout;
  const refusal = async (driver: string, volume: string): Promise<string> => {
    try {
      await engine.docker([...runArgs(driver, volume, ['--rm']), 'true']);
    } catch (e) {
      return (e as Error).message;
    }
    assert.fail(`docker run -v ${volume} succeeded`);
  };
  const startedAt = async (c: string) => (await engine.docker(['inspect', '-f', '{{.State.StartedAt}}', c])).stdout.trim();
  const state = async (c: Cluster) => c.admin.call('DumpInternalState', '');

  test("hostile volume names get the original's texts and make nothing", async () => {
    assert.match(await refusal(driver1, 'a.b.c'), /Volume names must be of the form \[NAMESPACE\/\]DOT\[\.SUBDOT\]: 'a\.b\.c'/);
    assert.match(await refusal(driver1, 'ns/dot.sub@x'), /Subdot names must not contain \$, :, \/, \., or @: 'ns\/dot\.sub@x'/);
    assert.match(await refusal(driver1, 'a/b/c'), /Volume names must be of the form NAMESPACE\/VOLUME or just VOLUME: 'a\/b\/c'/);
    assert.match(await refusal(driver1, `${'x'.repeat(65)}`), /invalid dot name/);
    assert.match(
      await refusal(driver1, 'nodot@nobranch'),
      /Cannot create admin\/nodot with branch nobranch: the dot does not exist/,
    );
    const list = await c1.admin.call('List', null);
    assert.deepEqual(Object.keys(list.admin ?? {}), [], 'no dot was made');
  });

  test('the plugin socket answers unknown endpoints and malformed requests with clear errors', async () => {
    const socket = socketOf(driver1);
    const post = (path: string, body: string, method = 'POST') => curlUnix(socket, method, path, body);
    const unknown = await post('/VolumeDriver.Explode', '{}');
    assert.equal(unknown.status, 404);
    assert.match(JSON.parse(unknown.body).Err, /unknown plugin endpoint POST \/VolumeDriver\.Explode/);
    assert.equal((await post('/VolumeDriver.Get', '', 'GET')).status, 404);
    assert.equal((await post('/__proto__', '{}')).status, 404);
    const badJson = await post('/VolumeDriver.Get', '{"Name":');
    assert.equal(badJson.status, 400);
    assert.match(JSON.parse(badJson.body).Err, /not JSON/);
    assert.equal((await post('/VolumeDriver.Get', '[1,2]')).status, 400);
    assert.equal(
      (await post('/VolumeDriver.Create', JSON.stringify({ Name: 'big', Opts: { x: 'y'.repeat(100_000) } }))).status,
      413,
    );
    const numberName = JSON.parse((await post('/VolumeDriver.Mount', '{"Name":5,"ID":"x"}')).body);
    assert.match(numberName.Err, /volume name cannot be empty/);
    const traversal = JSON.parse((await post('/VolumeDriver.Mount', '{"Name":"../../../etc","ID":"x"}')).body);
    assert.match(traversal.Err, /Volume names must be of the form \[NAMESPACE\/\]DOT\[\.SUBDOT\]: '\.\.\/\.\.\/\.\.\/etc'/);
    const missing = JSON.parse((await post('/VolumeDriver.Get', '{"Name":"nothere"}')).body);
    assert.equal(missing.Err, 'No such volume: nothere');
    const opts = JSON.parse((await post('/VolumeDriver.Create', '{"Name":"withopts","Opts":{"size":"1G"}}')).body);
    assert.match(opts.Err, /takes no options, got: size/);
    const activate = JSON.parse((await post('/Plugin.Activate', '')).body);
    assert.deepEqual(activate, { Implements: ['VolumeDriver'] });
    assert.deepEqual(Object.keys((await c1.admin.call('List', null)).admin ?? {}), [], 'nothing was made');
    assert.equal(await c1.admin.call('Ping', null), true, 'the server is still serving');
  });

  test("the plugin acts as its configured user: another user's dot is invisible, other namespaces are refused", async () => {
    await registerUser(c0, 'alice');
    const bob = await registerUser(c0, 'bob');
    await bob.client.call('Create', { Namespace: 'bob', Name: 'private' });
    await writeData(c0, 'bob/private', 'secret', 'bob only');
    const invisible = await refusal(driver0, 'bob/private');
    assert.match(invisible, /No such filesystem named 'bob\/private'/);
    assert.doesNotMatch(invisible, /bob only/);
    assert.match(
      await refusal(driver0, 'admintry'),
      /User is not an administrator for namespace admin, so cannot create volumes/,
    );
    assert.equal(await run(driver0, 'alice/mine', 'echo hers > /foo/f; cat /foo/f'), 'hers\n');
    const aliceList = await c0.client('alice', 'alice-password-1').call('List', null);
    assert.deepEqual(Object.keys(aliceList.alice ?? {}), ['mine']);
    assert.equal(await readData(c0, 'alice/mine', 'f'), 'hers\n');
  });

  test('incoming push and pull refuse while a container uses the dot, and go through once it stops', async () => {
    const dot = `shared${tag}`;
    const user = `user${tag}`;
    await run(driver1, dot, 'echo one > /foo/x');
    await c1.ok(['switch', dot]);
    await c1.ok(['commit', '-m', 'one']);
    await c0.ok(['clone', 'cluster_1', dot]);
    await writeData(c0, dot, 'x', 'two\n');
    await c0.ok(['switch', dot]);
    await c0.ok(['commit', '-m', 'two']);
    await engine.docker([...runArgs(driver1, dot, ['-d', '--name', user]), 'sleep', '100000']);
    const pushed = await c0.fails(['push', 'cluster_1', dot]);
    assert.match(pushed.output, new RegExp(`active containers running on volume where data would be written: /${user}`));
    const pulled = await c1.fails(['pull', 'cluster_0', dot]);
    assert.match(pulled.output, new RegExp(`active containers running on volume where data would be written: /${user}`));
    assert.equal(await readData(c1, dot, 'x'), 'one\n', 'nothing arrived');
    await engine.docker(['rm', '-f', user]);
    await c0.ok(['push', 'cluster_1', dot]);
    assert.equal(await run(driver1, dot, 'cat /foo/x'), 'two\n');
    assert.equal(await dotId(c0, dot), await dotId(c1, dot));
  });

  test('the server killed or stopped while containers run: they keep running, and the restarted server knows them', async () => {
    const dot = `survive${tag}`;
    const name = `survivor${tag}`;
    await engine.docker([
      ...runArgs(driver1, dot, ['-d', '--name', name]),
      'sh',
      '-c',
      "trap 'exit 0' TERM; echo start >> /foo/starts; while true; do echo tick >> /foo/ticks; sleep 0.2; done",
    ]);
    await c1.ok(['switch', dot]);
    await c1.ok(['commit', '-m', 'running']);
    await c1.server.kill9();
    const ticksWhileDown = await readTicks(engine, name);
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok((await readTicks(engine, name)) > ticksWhileDown, 'the container keeps writing while the server is down');
    const restarted = await c1.server.restart();
    // The count comes back from the Engine API, in the background of the server's start.
    await waitUntil(async () => (await state(c1))[`docker.mounts.${dot}`] === '1');
    // A graceful restart (what `dm cluster upgrade` does) leaves the container alone too.
    const running = await startedAt(name);
    await restarted.stop();
    assert.equal(await startedAt(name), running);
    assert.equal((await engine.docker(['inspect', '-f', '{{.State.Running}}', name])).stdout.trim(), 'true');
    await restarted.restart();
    await waitUntil(async () => (await state(c1))[`docker.mounts.${dot}`] === '1');
    assert.match(await c1.ok(['list']), new RegExp(`${dot}\\b.*/${name}`));
    const before = await startedAt(name);
    await c1.ok(['reset', '--hard', 'HEAD']);
    assert.notEqual(await startedAt(name), before, 'reset restarted the container through the restarted server');
    assert.equal((await engine.docker(['exec', name, 'cat', '/foo/starts'])).stdout, 'start\nstart\n');
  });

  test('dockerd restarting while a volume is mounted: the container comes back on the same dot', async () => {
    const dot = `durable${tag}`;
    const name = `durable${tag}`;
    await engine.docker([
      ...runArgs(driver1, dot, ['-d', '--name', name, '--restart', 'always']),
      'sh',
      '-c',
      "trap 'exit 0' TERM; echo start >> /foo/starts; sleep 100000 & wait",
    ]);
    assert.equal((await state(c1))[`docker.mounts.${dot}`], '1');
    await engine.restart();
    await waitUntil(async () => (await engine.docker(['inspect', '-f', '{{.State.Running}}', name])).stdout.trim() === 'true');
    assert.equal((await engine.docker(['exec', name, 'cat', '/foo/starts'])).stdout, 'start\nstart\n');
    assert.equal(await readData(c1, dot, 'starts'), 'start\nstart\n');
    assert.equal((await state(c1))[`docker.mounts.${dot}`], '1', 'unmounted at the stop, mounted again at the start');
    await waitUntil(async () => new RegExp(`/${name}`).test(await c1.ok(['list'])));
  });
});

async function readTicks(engine: DockerEngine, container: string): Promise<number> {
  const { stdout } = await engine.docker(['exec', container, 'cat', '/foo/ticks']);
  return stdout.split('\n').filter((l) => l === 'tick').length;
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) assert.fail('timed out waiting');
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** An HTTP request on a unix socket with curl (the plugin's wire, as dockerd speaks it). */
function curlUnix(socket: string, method: string, path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'curl',
      [
        '-s',
        '--unix-socket',
        socket,
        '-X',
        method,
        '-o',
        '-',
        '-w',
        '\n%{http_code}',
        '--data-binary',
        '@-',
        `http://plugin${path}`,
      ],
      { encoding: 'utf8', maxBuffer: 1 << 20 },
      (err, stdout) => {
        if (err) return reject(err);
        const at = stdout.lastIndexOf('\n');
        resolve({ status: Number(stdout.slice(at + 1)), body: stdout.slice(0, at) });
      },
    );
    child.stdin?.end(body);
  });
}
