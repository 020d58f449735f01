import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
  createHosts,
  makeTempDir,
  mountsUnder,
  runDm,
  runDmIn,
  SERVER_BUNDLE,
  type ServerProcess,
  skipUnless,
  startServerProcess,
  type TestHost,
} from '@dotmesh/testkit';

/**
 * Two single-node clusters on two test hosts (network namespaces joined by the kit's veths),
 * each with its own loop-file pool. The built `dm` runs inside one host and talks to the
 * server on the other, as a user with two machines would; each cluster sees only its own dots.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup']);

interface Side {
  readonly host: TestHost;
  readonly server: ServerProcess;
  readonly home: string;
}

describe('two clusters on two hosts', { skip }, () => {
  const cleanup = new Cleanup();
  let a: Side;
  let b: Side;
  const dm = async (from: Side, args: readonly string[], password?: string): Promise<string> => {
    const r = await runDmIn(from.host, args, { home: from.home, ...(password ? { env: { DOTMESH_PASSWORD: password } } : {}) });
    if (r.code !== 0)
      throw new Error(`dm ${args.join(' ')} in ${from.host.name} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r.stdout;
  };
  const target = (s: Side) => `admin@${s.host.address}:${s.server.port}`;

  before(async () => {
    const [ha, hb] = (await createHosts({ cleanup, count: 2 })) as [TestHost, TestHost];
    const side = async (host: TestHost): Promise<Side> => ({
      host,
      server: await startServerProcess({ cleanup, host, serverBin: SERVER_BUNDLE }),
      home: await makeTempDir('home-', cleanup),
    });
    [a, b] = await Promise.all([side(ha), side(hb)]);
  });
  after(() => cleanup.run());

  test('each server listens on its own host address and answers from inside its namespace', async () => {
    assert.equal(a.server.url, `http://${a.host.address}:${a.server.port}/rpc`);
    assert.equal(await a.server.admin.call('Ping', null), true);
    assert.equal(await b.server.admin.call('Ping', null), true);
  });

  test('dm in host A manages the cluster in host B, and vice versa', async () => {
    await dm(a, ['remote', 'add', 'b', target(b)], b.server.apiKey);
    await dm(a, ['remote', 'add', 'a', target(a)], a.server.apiKey);
    await dm(b, ['remote', 'add', 'a', target(a)], a.server.apiKey);
    await dm(b, ['remote', 'add', 'b', target(b)], b.server.apiKey);
    assert.match(await dm(a, ['remote', '-v']), new RegExp(`\\* b\\thttp://${target(b).replaceAll('.', '\\.')}\\n`));

    // A's dm creates a dot on B (its current remote); B's dm creates one on A.
    await dm(a, ['init', 'made-from-a']);
    await dm(b, ['remote', 'switch', 'a']);
    await dm(b, ['init', 'made-from-b']);

    const onB = await dm(a, ['list']);
    assert.match(onB, /made-from-a/);
    assert.doesNotMatch(onB, /made-from-b/);
    const onA = await dm(b, ['list']);
    assert.match(onA, /made-from-b/);
    assert.doesNotMatch(onA, /made-from-a/);

    // Each cluster's own view, from its own host, agrees.
    await dm(a, ['remote', 'switch', 'a']);
    const aLocal = await dm(a, ['list']);
    assert.match(aLocal, /made-from-b/);
    assert.doesNotMatch(aLocal, /made-from-a/);
    await dm(b, ['remote', 'switch', 'b']);
    const bLocal = await dm(b, ['list']);
    assert.match(bLocal, /made-from-a/);
    assert.doesNotMatch(bLocal, /made-from-b/);
  });

  test('each cluster has its own mounted pool', () => {
    const poolA = mountsUnder(`${a.server.dir}/`);
    const poolB = mountsUnder(`${b.server.dir}/`);
    assert.ok(poolA.length > 0 && poolB.length > 0, `pools mounted: ${poolA} / ${poolB}`);
    assert.ok(!poolA.some((m) => poolB.includes(m)));
  });

  test('the kit refuses connections that would not go through its veths', async () => {
    await assert.rejects(runDmIn(a.host, ['list'], { home: a.home, to: ['192.0.2.1'] }), /route check from/);
    const rootHome = await makeTempDir('home-', cleanup);
    assert.throws(() => runDm(['remote', 'add', 'b', target(b)], { home: rootHome }), /refusing to connect from the root/);
    // A home whose remotes point at test hosts cannot be used from the root namespace either.
    assert.throws(() => runDm(['list'], { home: a.home }), /refusing to connect from the root/);
  });
});
