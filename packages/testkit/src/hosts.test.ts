import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { skipUnless } from './capabilities.ts';
import { Cleanup } from './cleanup.ts';
import { createHosts, isTestAddress, refuseRootNamespaceConnect, routeCheck, type TestHost } from './hosts.ts';
import { listNetns, netnsPrefix } from './netns.ts';
import { runCommand, waitFor } from './process.ts';

const skip = skipUnless(['root', 'netns']);

const SERVE =
  "require('net').createServer((s)=>s.end('hello from '+process.argv[1])).listen(7000, process.argv[1], ()=>console.log('ready'))";
const FETCH =
  "const s=require('net').connect(7000, process.argv[1]);let d='';s.on('data',(c)=>{d+=c});s.on('end',()=>console.log(d));s.on('error',(e)=>{console.error(e.message);process.exit(1)})";

/** A TCP round trip from `from` to a tiny server in `to`, both inside their namespaces. */
async function tcpRoundTrip(c: Cleanup, from: TestHost, to: TestHost): Promise<string> {
  const srv = to.spawn(process.execPath, ['-e', SERVE, to.address], { cleanup: c });
  await waitFor(() => srv.output().includes('ready'), { what: `server in ${to.name}` });
  await routeCheck(from, to.address);
  const { stdout } = await from.exec(process.execPath, ['-e', FETCH, to.address], { timeoutMs: 10_000 });
  await srv.stop();
  return stdout.trim();
}

function hasPing(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v ping'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('createHosts', { skip }, () => {
  test('star: three hosts that reach each other only through the kit’s veths, removed by cleanup', async () => {
    const c = new Cleanup();
    let names: string[] = [];
    try {
      const t0 = Date.now();
      const hosts = await createHosts({ cleanup: c, count: 3 });
      const took = Date.now() - t0;
      names = hosts.map((h) => h.name);
      assert.equal(hosts.length, 3);
      for (const h of hosts) {
        assert.ok(h.name.startsWith(netnsPrefix()), h.name);
        assert.equal(h.netnsPath, `/run/netns/${h.name}`);
        assert.ok(isTestAddress(h.address), h.address);
        assert.deepEqual(h.devices, ['dm0']);
      }
      assert.equal(new Set(hosts.map((h) => h.address)).size, 3);
      assert.equal(new Set(hosts.map((h) => h.address.split('.').slice(0, 3).join('.'))).size, 1, 'one /24');
      for (const n of names) assert.ok(listNetns(n).includes(n), `${n} exists`);
      // Nothing was configured in the root namespace.
      const rootAddrs = (await runCommand('ip', ['-j', 'addr'])).stdout;
      for (const h of hosts) assert.ok(!rootAddrs.includes(`"${h.address}"`), `${h.address} is not in the root namespace`);

      for (const a of hosts) {
        for (const b of hosts) await routeCheck(a, b.address);
        await routeCheck(a, '127.0.0.1');
        await assert.rejects(routeCheck(a, '8.8.8.8'), /route check from .* to 8\.8\.8\.8/);
        const [, , third] = a.address.split('.').map(Number) as [number, number, number];
        await assert.rejects(routeCheck(a, `10.200.${(third + 1) % 256}.7`), /unreachable/i, 'another test /24 is not routed');
      }
      const [a, b, d] = hosts as [TestHost, TestHost, TestHost];
      await assert.rejects(routeCheck({ ...a }, b.address), /not a live host/);
      assert.throws(() => refuseRootNamespaceConnect(b.address), /refusing to connect from the root network namespace/);
      assert.throws(() => refuseRootNamespaceConnect('10.200.0.9'), /refusing/);
      refuseRootNamespaceConnect('127.0.0.1');

      assert.equal(await tcpRoundTrip(c, a, b), `hello from ${b.address}`);
      assert.equal(await tcpRoundTrip(c, d, a), `hello from ${a.address}`);
      if (hasPing()) {
        for (const [x, y] of [
          [a, b],
          [b, d],
          [d, a],
        ] as const)
          await x.exec('ping', ['-c1', '-W1', y.address]);
      }
      console.log(`# createHosts(3, star) took ${took} ms`);
    } finally {
      await c.run();
    }
    for (const n of names) assert.deepEqual(listNetns(n), [], `${n} was deleted`);
    assert.deepEqual(
      listNetns(netnsPrefix()).filter((n) => names.some((m) => n.startsWith(m.slice(0, -2)))),
      [],
      'the switch namespace was deleted too',
    );
  });

  test('mesh: one veth pair per pair of hosts', async () => {
    const c = new Cleanup();
    let names: string[] = [];
    try {
      const hosts = await createHosts({ cleanup: c, count: 3, links: 'mesh' });
      names = hosts.map((h) => h.name);
      const [a, b, d] = hosts as [TestHost, TestHost, TestHost];
      assert.deepEqual([...a.devices].sort(), ['dm1', 'dm2']);
      const route = JSON.parse((await runCommand('ip', ['-n', a.name, '-j', 'route', 'get', d.address])).stdout) as Array<{
        dev: string;
      }>;
      assert.equal(route[0]?.dev, 'dm2');
      for (const x of hosts) for (const y of hosts) await routeCheck(x, y.address);
      await assert.rejects(routeCheck(a, '8.8.8.8'));
      assert.equal(await tcpRoundTrip(c, a, d), `hello from ${d.address}`);
      assert.equal(await tcpRoundTrip(c, d, b), `hello from ${b.address}`);
    } finally {
      await c.run();
    }
    for (const n of names) assert.deepEqual(listNetns(n), []);
  });

  test('cleanup kills processes left inside a host, then deletes it', async () => {
    const c = new Cleanup();
    const [h] = (await createHosts({ cleanup: c, count: 1 })) as [TestHost];
    const sleeper = h.spawn('sleep', ['300']);
    await c.run();
    const { code } = await sleeper.exited;
    assert.notEqual(code, 0);
    assert.deepEqual(listNetns(h.name), []);
  });
});
