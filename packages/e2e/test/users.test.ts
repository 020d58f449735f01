import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DotmeshClient } from '@dotmesh/rpc';
import { Cleanup, skipUnless } from '@dotmesh/testkit';
import { initCluster, type TestCluster } from './cluster-harness.ts';

/**
 * Users and namespaces with the built dm: admin registers alice with `dm debug
 * RegisterNewUser`, alice adds a remote with her API key, and `dm init apples` on it makes
 * `alice/apples` (the remote's user is the default namespace); admin's `dm list` shows it,
 * bob's does not.
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);

describe('users and namespaces with dm', { skip }, () => {
  const cleanup = new Cleanup();
  let c: TestCluster;
  const keys: Record<string, string> = {};

  before(async () => {
    c = await initCluster(cleanup);
    for (const name of ['alice', 'bob']) {
      const user = JSON.parse(
        await c.ok([
          'debug',
          'RegisterNewUser',
          JSON.stringify({ Name: name, Email: `${name}@example.com`, Password: `${name}-password` }),
        ]),
      ) as { Name: string; Id: string };
      assert.equal(user.Name, name);
      const client = new DotmeshClient({ url: `http://127.0.0.1:${c.port}/rpc`, user: name, apiKey: `${name}-password` });
      keys[name] = (await client.call('GetApiKey', null)).ApiKey;
      await c.ok(['remote', 'add', name, `${name}@127.0.0.1:${c.port}`], { env: { DOTMESH_PASSWORD: keys[name]! } });
    }
  });
  after(async () => cleanup.run());

  test("dm init on alice's remote makes alice/apples; admin sees it, bob does not", async () => {
    await c.ok(['remote', 'switch', 'alice']);
    await c.ok(['init', 'apples']);
    await c.ok(['commit', '-m', 'by alice']);
    assert.match(await c.ok(['list']), /alice\/apples/);
    assert.match(await c.ok(['log']), /by alice/);
    await c.ok(['remote', 'switch', 'local']);
    const admin = await c.ok(['list', '-H']);
    assert.match(admin, /^alice\/apples\t/m);
    await c.ok(['remote', 'switch', 'bob']);
    assert.doesNotMatch(await c.ok(['list', '-H']), /apples/);
    const refused = await c.dm(['init', 'alice/bananas']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /User is not an administrator for namespace alice, so cannot create volumes/);
    await c.ok(['init', 'cherries']);
    assert.match(await c.ok(['list', '-H']), /^bob\/cherries\t/m);
  });
});
