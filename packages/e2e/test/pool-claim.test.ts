import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DotmeshClient } from '@dotmesh/rpc';
import {
  Cleanup,
  type EtcdProcess,
  freePorts,
  listLoopDevicesFor,
  mountsUnder,
  SERVER_BUNDLE,
  type ServerProcess,
  skipUnless,
  startEtcd,
  startServerProcess,
} from '@dotmesh/testkit';

/**
 * A pool's exclusive claim (built dotmesh-server, real btrfs, a real etcd): two server processes
 * pointed at one pool directory, as a pool PVC moved to a replacement node is.
 * - While the first serves, a second one on the same pool is refused at once, naming the holder
 *   (the pool lock's record: pid, host, node and API address).
 * - The first killed (-9), a server at another address (the replacement node) takes the pool over
 *   only once the dead one's lease has expired: while the dead server's address record lives the
 *   new one does not serve; then it serves every commit, and the record names its address.
 * - A server with `releasePoolAtStop` (the Kubernetes pool PVCs') stopped gracefully leaves no
 *   mount and no loop device of its pool, so its volume can move; started again, it has it all.
 * Lasts about 30 s (a 6 s node lease).
 */
const skip = skipUnless(['root', 'btrfs', 'losetup', 'etcd']);
const LEASE_TTL_SECONDS = 6;

/** The value of `key` in etcd (its JSON gateway), or undefined. */
async function etcdGet(endpoint: string, key: string): Promise<string | undefined> {
  const res = await fetch(`${endpoint}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: Buffer.from(key).toString('base64') }),
  });
  const body = (await res.json()) as { kvs?: { value: string }[] };
  const kv = body.kvs?.[0];
  return kv ? Buffer.from(kv.value, 'base64').toString() : undefined;
}

describe('a pool is served by one server at a time', { skip }, () => {
  const cleanup = new Cleanup();
  after(() => cleanup.run());
  let a: ServerProcess;
  let etcd: EtcdProcess;
  const dot = { Namespace: 'admin', Name: 'claimed' };

  test('a second server on a pool in use is refused, naming the holder', async () => {
    etcd = await startEtcd({ cleanup });
    const [clusterPort] = await freePorts(1);
    a = await startServerProcess({
      cleanup,
      etcd,
      serverBin: SERVER_BUNDLE,
      extraConfig: {
        nodeName: 'node-a',
        advertiseAddress: '127.0.0.1',
        clusterPort,
        nodeLeaseTtlSeconds: LEASE_TTL_SECONDS,
      },
    });
    await a.admin.call('Create', dot);
    for (const m of ['one', 'two']) await a.admin.call('Commit', { ...dot, Branch: '', Message: m, Metadata: {} });
    const second = spawnSync(process.execPath, [SERVER_BUNDLE, 'serve', '--config', a.configFile], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(second.status, 1, second.stderr);
    assert.match(
      second.stderr,
      /already using the pool at .*: pid \d+ on host .* \(node node-a, API at 127\.0\.0\.1:\d+\) since /,
    );
    assert.match(second.stderr, new RegExp(`pid ${a.pid} `));
    assert.equal(await a.admin.call('Ping', null), true, 'the holder still serves');
  });

  test("a dead server's claim is taken over by a server at another address only after its lease expires", async () => {
    const poolId = (JSON.parse(await readFile(join(a.dir, 'mnt', 'pool.json'), 'utf8')) as { poolId: string }).poolId;
    const config = JSON.parse(await readFile(a.configFile, 'utf8')) as Record<string, unknown> & { etcdEndpoints: string[] };
    const endpoint = config.etcdEndpoints[0]!;
    const addressKey = `dotmesh.io/servers/addresses/${poolId}`;
    const record = async () => {
      const v = await etcdGet(endpoint, addressKey);
      return v === undefined ? undefined : (JSON.parse(v) as { Addresses: string[] }).Addresses;
    };
    assert.deepEqual(await record(), ['127.0.0.1']);
    const before = await a.admin.call('Commits', { ...dot, Branch: '' });
    await a.kill9();
    // The replacement: the same pool and state, another node at another address.
    await writeFile(
      a.configFile,
      JSON.stringify({ ...config, nodeName: 'node-b', listenHost: '0.0.0.0', advertiseAddress: '127.0.0.2' }),
    );
    const started = startServerProcess({ cleanup, dir: a.dir, etcd, serverBin: SERVER_BUNDLE, extraConfig: {} }).catch(
      (e: unknown) => e,
    );
    const b = new DotmeshClient({ url: `http://127.0.0.2:${config.port}/rpc`, user: 'admin', apiKey: a.apiKey, timeoutMs: 2000 });
    const serves = () =>
      b.call('Ping', null).then(
        (r) => r === true,
        () => false,
      );
    // While the dead server's record lives (its lease not expired), the new one does not serve.
    let sawDeadRecord = 0;
    const deadline = Date.now() + (LEASE_TTL_SECONDS + 60) * 1000;
    for (;;) {
      const holder = await record();
      if (holder?.[0] === '127.0.0.1') {
        sawDeadRecord++;
        assert.equal(await serves(), false, 'the new server serves while the dead one still holds the pool');
      } else if (holder?.[0] === '127.0.0.2' && (await serves())) break;
      assert.ok(Date.now() < deadline, `the new server did not take the pool over (record: ${JSON.stringify(holder)})`);
      await sleep(200);
    }
    assert.ok(sawDeadRecord > 0, 'the dead server held the pool for a while after its death');
    const taken = await started;
    assert.ok(!(taken instanceof Error), String(taken));
    const log = await (taken as ServerProcess).log();
    assert.match(log, /another server holds this pool in the cluster: waiting for its lease to expire/);
    assert.match(log, /lease expired: taking the pool over/);
    assert.deepEqual(await b.call('Commits', { ...dot, Branch: '' }), before, 'every commit is there');
  });

  test('releasePoolAtStop: a stopped server leaves no mount and no loop device of its pool; it starts again with everything', async () => {
    const s = await startServerProcess({ cleanup, serverBin: SERVER_BUNDLE, extraConfig: { releasePoolAtStop: true } });
    await s.admin.call('Create', dot);
    await s.admin.call('Procure', { ...dot, Subdot: '' });
    await s.admin.call('Commit', { ...dot, Branch: '', Message: 'kept', Metadata: {} });
    const before = await s.admin.call('Commits', { ...dot, Branch: '' });
    assert.ok(mountsUnder(`${s.dir}/`).length > 0, 'mounted while it serves');
    assert.equal((await listLoopDevicesFor(join(s.dir, 'dotmesh_data'))).length, 1);
    await s.stop();
    assert.deepEqual(mountsUnder(`${s.dir}/`), [], 'no mount of the pool or its dots is left');
    assert.deepEqual(await listLoopDevicesFor(join(s.dir, 'dotmesh_data')), [], 'no loop device is left');
    assert.match(await s.log(), /pool unmounted and its loop device detached/);
    const again = await s.restart();
    assert.deepEqual(await again.admin.call('Commits', { ...dot, Branch: '' }), before);
    await again.stop();
  });
});
