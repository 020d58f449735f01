import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
  createHosts,
  makeTempDir,
  type NetnsEtcd,
  SERVER_BUNDLE,
  skipUnless,
  startEtcdIn,
  type TestHost,
} from '@dotmesh/testkit';
import { rewrittenByLiveNodes } from './cluster-helpers.ts';
import { type HostNode, joinArgs, makeHostNode, nodeIdOf } from './cluster-host-node.ts';
import { startTestDocker } from './docker-harness.ts';

/**
 * docs/cluster.md, "Make a three-node cluster", run as written: `dm cluster init --store etcd`
 * on the first node, `dm cluster token create --token-file` there, then `dm cluster join` with
 * the printed command on the second and third hosts; then the bad input a join can meet, on
 * the same cluster and a spare host. Each node is a test host; every path and port is the
 * test's own (the flags the docs leave at their defaults are given with free ports and private
 * paths).
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);

describe('make a three-node cluster with dm cluster init and dm cluster join (docs/cluster.md)', { skip }, () => {
  const cleanup = new Cleanup();
  let etcd: NetnsEtcd;
  let n1: HostNode;
  let n2: HostNode;
  let n3: HostNode;
  let spare: HostNode;
  let tokens: string;
  /** The single-use token node 2 joined with (used up since). */
  let usedToken: { file: string; address: string; caHash: string };
  before(async () => {
    const hosts = (await createHosts({ cleanup, count: 5 })) as [TestHost, TestHost, TestHost, TestHost, TestHost];
    etcd = await startEtcdIn({ cleanup, host: hosts[4] });
    [n1, n2, n3, spare] = (await Promise.all(hosts.slice(0, 4).map((h) => node(h)))) as [HostNode, HostNode, HostNode, HostNode];
    tokens = await makeTempDir('tokens', cleanup);
  });
  after(() => cleanup.run());

  const node = (host: TestHost) => makeHostNode(cleanup, host);

  /** `dm cluster token create` on node 1 into a new file; the token is not printed then. */
  async function token(name: string, extra: readonly string[] = []): Promise<{ file: string; address: string; caHash: string }> {
    const file = join(tokens, name);
    const out = await n1.ok(['cluster', 'token', 'create', '--token-file', file, ...extra]);
    const m = /dm cluster join (\S+) --ca-hash (sha256:[0-9a-f]{64}) --token-file <file holding the token>/.exec(out);
    assert.ok(m, out);
    assert.ok(!out.includes((await readFile(file, 'utf8')).trim()), 'the token is not printed when it goes into a file');
    return { file, address: m[1]!, caHash: m[2]! };
  }

  /** `dm cluster token create` on `n` (its remote `local`), single use, into a new file. */
  async function tokenOn(n: HostNode, name: string): Promise<{ file: string; address: string; caHash: string }> {
    const file = join(tokens, name);
    const out = await n.ok(['cluster', 'token', 'create', '--token-file', file]);
    const m = /dm cluster join (\S+) --ca-hash (sha256:[0-9a-f]{64})/.exec(out);
    assert.ok(m, out);
    return { file, address: m[1]!, caHash: m[2]! };
  }

  /** Every key in etcd but the ones live nodes rewrite on their own (sizes, pool space, containers) and the tokens. */
  const etcdFacts = async () =>
    (await etcd.keys('dotmesh.io/'))
      .filter((kv) => !rewrittenByLiveNodes(kv.key) && !kv.key.includes('/join/tokens/'))
      .map((kv) => `${kv.key}=${kv.value}`)
      .sort();

  test('init, then two joins (one token from a file, one on standard input): one cluster of three nodes, every dot seen and moved from any node', async () => {
    const first = await n1.ok([
      'cluster',
      'init',
      '--store',
      'etcd',
      '--etcd-endpoints',
      etcd.endpoints.join(','),
      ...n1.nodeArgs(),
    ]);
    assert.match(
      first,
      new RegExp(
        `Node of a cluster of several nodes: node-to-node endpoint on port \\d+, advertised at ${n1.host.address.replaceAll('.', '\\.')}; store etcd at ${etcd.endpoints[0]}\\.`,
      ),
    );
    assert.match(first, /Further hosts join with a token: 'dm cluster token create --token-file <file>'/);
    const tls1 = join(n1.poolDir, 'server', 'tls');
    const ca = new X509Certificate(await readFile(join(tls1, 'ca.pem')));

    for (const n of [n2, n3]) {
      const t = await token(`join-${n.host.address}`);
      assert.equal(t.address, `${n1.host.address}:${n1.clusterPort}`);
      assert.ok(first.includes(`Cluster CA pin ${t.caHash}: `), 'init printed the same pin');
      if (n === n2) usedToken = t;
      // Node 2 reads its token from the file, node 3 on standard input (`--token-file -`).
      const out =
        n === n2 ? await n.ok(joinArgs(n, t)) : await n.ok(joinArgs(n, { ...t, file: '-' }), {}, await readFile(t.file, 'utf8'));
      assert.match(out, new RegExp(`this node joined the cluster through ${t.address.replaceAll('.', '\\.')}`));
      assert.match(out, /DOTMESH_PASSWORD=<the admin API key> dm remote add local admin@/);
      const tls = join(n.poolDir, 'server', 'tls');
      assert.deepEqual(await readFile(join(tls, 'ca.pem')), await readFile(join(tls1, 'ca.pem')), 'the cluster CA');
      assert.ok(!existsSync(join(tls, 'ca-key.pem')), 'a joined node never gets the CA key');
      assert.ok(!existsSync(join(n.poolDir, 'server', 'join-token')), 'the server deleted its copy of the token');
      const config = JSON.parse(await readFile(join(n.poolDir, 'server', 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(config.store, 'etcd');
      assert.equal(config.etcdMember, null, 'on an etcd Dotmesh does not run, a joined node runs no member');
      assert.deepEqual(config.etcdEndpoints, etcd.endpoints, 'the store came from the cluster');
      for (const f of ['node.pem', 'server.pem']) {
        assert.ok(new X509Certificate(await readFile(join(tls, f))).checkIssued(ca), `${f} is of the cluster CA`);
      }
    }
    // The joined nodes' dm: the admin's API key from the first node, as the join's output says.
    const { ApiKey } = JSON.parse(await n1.ok(['debug', 'GetApiKey'])) as { ApiKey: string };
    for (const n of [n2, n3]) {
      await n.ok(['remote', 'add', 'local', `admin@${n.host.address}:${n.port}`], { DOTMESH_PASSWORD: ApiKey });
    }
    const [id1, id2, id3] = await Promise.all([n1, n2, n3].map(nodeIdOf));
    for (const [n, id] of [
      [n2, id2],
      [n3, id3],
    ] as const) {
      const cert = new X509Certificate(await readFile(join(n.poolDir, 'server', 'tls', 'node.pem')));
      assert.ok(cert.subject.split('\n').includes(`CN=${id}`), 'the node certificate names the node id');
    }
    const nodes = JSON.parse(await n3.ok(['debug', 'DumpInternalState', 'nodes.'])) as Record<string, string>;
    assert.equal(nodes[`nodes.${id1}.addresses`], n1.host.address);
    assert.equal(nodes[`nodes.${id2}.addresses`], n2.host.address);
    assert.equal(nodes[`nodes.${id3}.addresses`], n3.host.address);

    await n1.ok(['init', 'docs']);
    const server = (out: string) =>
      out
        .split('\n')
        .find((l) => l.startsWith('docs\t'))
        ?.split('\t')[2];
    assert.equal(server(await n3.ok(['list', '-H'])), id1, 'node 3 lists the dot node 1 made, mastered by node 1');
    const mnt = join(n2.home, 'docs-mnt');
    await n2.ok(['mount', 'docs', mnt]);
    await writeFile(join(mnt, 'hello'), 'from node 2');
    assert.equal(server(await n1.ok(['list', '-H'])), id2, 'mounted on node 2: moved there');
    await n3.ok(['switch', 'docs']);
    await n3.ok(['commit', '-m', 'committed through node 3']);
    assert.match(await n2.ok(['switch', 'docs']).then(() => n2.ok(['log'])), /committed through node 3/);
    // Tokens: the two single-use ones are used up; a listed one shows no secret.
    const listed = await n1.ok(['cluster', 'token', 'list']);
    assert.equal(listed.trim(), 'No join tokens.');
  });

  /** A join on the spare host that must fail; returns its output. Nothing in etcd changes. */
  async function refusedJoin(args: readonly string[], why: RegExp): Promise<string> {
    const before = await etcdFacts();
    const r = await spare.dm(args);
    assert.notEqual(r.code, 0, `the join must fail:\n${r.stdout}\n${r.stderr}`);
    const out = `${r.stdout}${r.stderr}`;
    assert.match(out, why);
    assert.deepEqual(await etcdFacts(), before, 'nothing in etcd changed');
    assert.ok(!existsSync(join(spare.poolDir, 'server', 'join-token')), 'no copy of the token is left');
    assert.ok(!existsSync(join(spare.poolDir, 'server', 'tls', 'node.pem')), 'no certificate was issued');
    return out;
  }

  test('bad joins: a wrong, expired or used-up token, a CA pin that does not match; each changes nothing', async () => {
    const good = await token('spare-good');
    const secretOf = async (file: string) => (await readFile(file, 'utf8')).trim();
    // A wrong secret for a real token id.
    const wrong = join(tokens, 'wrong');
    const [id] = (await secretOf(good.file)).split('.');
    await writeFile(join(tokens, 'wrong'), `${id}.${'x'.repeat(32)}\n`, { mode: 0o600 });
    await refusedJoin(joinArgs(spare, { ...good, file: wrong }), new RegExp(`join token ${id} is unknown`));
    // The CA pin of another cluster (a server in the middle): refused before the token is sent.
    const otherPin = `sha256:${'ab'.repeat(32)}`;
    const mitm = await refusedJoin(
      joinArgs(spare, { ...good, caHash: otherPin }),
      /the CA that .* presents \(sha256:[0-9a-f]{64}\) is not the pinned one/,
    );
    assert.match(mitm, new RegExp(otherPin));
    assert.match(await n1.ok(['cluster', 'token', 'list']), new RegExp(`^${id}\\s+\\S+\\s+1$`, 'm'), 'the token was not used');
    // An expired token.
    const expired = await token('spare-expired', ['--ttl', '1s']);
    await new Promise((r) => setTimeout(r, 1500));
    await refusedJoin(joinArgs(spare, expired), /join token [a-z0-9]{6} (expired at|is unknown)/);
    // A used-up token: the single-use one node 2 joined with.
    await refusedJoin(joinArgs(spare, usedToken), /join token [a-z0-9]{6} is used up/);
    // A deleted token.
    const deleted = await token('spare-deleted');
    await n1.ok(['cluster', 'token', 'delete', (await secretOf(deleted.file)).split('.')[0]!]);
    await refusedJoin(joinArgs(spare, deleted), /join token [a-z0-9]{6} is unknown/);
    // Bad pins and addresses never reach the network.
    const malformed = await spare.dm(joinArgs(spare, { ...good, caHash: 'sha256:1234' }));
    assert.equal(malformed.code, 2);
    assert.match(malformed.stderr, /--ca-hash sha256:<64 hex digits> is required/);
  });

  test('a second join of a host that runs a node is refused, and its token is not used', async () => {
    const t = await token('second-join');
    const [id] = (await readFile(t.file, 'utf8')).trim().split('.');
    const r = await n2.dm(joinArgs(n2, t));
    assert.notEqual(r.code, 0);
    assert.match(`${r.stdout}${r.stderr}`, /already running|is running/);
    assert.match(await n1.ok(['cluster', 'token', 'list']), new RegExp(`^${id} `, 'm'), 'the token is still there');
    await n1.ok(['cluster', 'token', 'delete', id!]);
  });

  test('dm pins the cluster CA: a remote works against any node and survives a reissued certificate', async () => {
    const { caHash } = await token('for-the-pin', ['--ttl', '60s']);
    const { ApiKey } = JSON.parse(await n1.ok(['debug', 'GetApiKey'])) as { ApiKey: string };
    const env = { DOTMESH_PASSWORD: ApiKey };
    // From node 2's host: node 1 and node 3 by the CA pin; from node 3's, node 1 by its leaf's
    // fingerprint (known_servers holds one trust per host:port).
    await n2.ok(['remote', 'add', 'ca1', `admin@${n1.host.address}:${n1.tlsPort}`, '--trust-ca', caHash], env);
    await n2.ok(['remote', 'add', 'ca3', `admin@${n3.host.address}:${n3.tlsPort}`, '--trust-ca', caHash], env);
    const leaf = new X509Certificate(await readFile(join(n1.poolDir, 'server', 'tls', 'server.pem'))).fingerprint256;
    await n3.ok(['remote', 'add', 'leaf1', `admin@${n1.host.address}:${n1.tlsPort}`, '--trust-fingerprint', leaf], env);
    const known = await readFile(join(n2.home, '.dotmesh', 'known_servers'), 'utf8');
    assert.ok(known.includes(`${n3.host.address}:${n3.tlsPort} cluster-ca:${caHash}`), known);
    // A wrong pin is refused before the key is sent, and nothing is saved.
    const wrong = await n2.dm(
      ['remote', 'add', 'bad', `admin@${n3.host.address}:${n3.tlsPort}`, '--trust-ca', `sha256:${'0'.repeat(64)}`],
      env,
    );
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /is not issued by the cluster CA sha256:0{64} given with --trust-ca/);
    assert.ok(!(await n2.ok(['remote'])).includes('bad'));
    const listVia = async (n: HostNode, remote: string) => {
      await n.ok(['remote', 'switch', remote]);
      const r = await n.dm(['list', '-H']);
      await n.ok(['remote', 'switch', 'local']);
      return r;
    };
    for (const r of ['ca1', 'ca3']) assert.equal((await listVia(n2, r)).code, 0, r);
    assert.equal((await listVia(n3, 'leaf1')).code, 0);
    // Node 1's HTTPS certificate is issued again (a new key and fingerprint): the CA pin still
    // holds, the leaf pin no longer does.
    await n1.ok(['cluster', 'stop', '--use-pool-dir', n1.poolDir]);
    await rm(join(n1.poolDir, 'server', 'tls', 'server.pem'));
    await n1.ok(['cluster', 'start', '--use-pool-dir', n1.poolDir, '--server-bin', SERVER_BUNDLE]);
    assert.notEqual(new X509Certificate(await readFile(join(n1.poolDir, 'server', 'tls', 'server.pem'))).fingerprint256, leaf);
    const pinned = await listVia(n2, 'ca1');
    assert.equal(pinned.code, 0, `the CA pin survives the new certificate: ${pinned.stderr}`);
    const stale = await listVia(n3, 'leaf1');
    assert.notEqual(stale.code, 0);
    assert.match(stale.stderr, /does not match its pin/);
  });

  test('joins survive the loss of the first node once its CA key is copied to another (docs/cluster.md)', async () => {
    const t = await tokenOn(n2, 'through-node-2');
    assert.equal(t.address, `${n2.host.address}:${n2.clusterPort}`);
    // Node 2 has no CA key yet: it refuses to let a host in, and the token stays unused.
    await refusedJoin(joinArgs(spare, t), /this node does not hold the cluster CA key, so it cannot let a host join/);
    // The documented copy, then node 1 goes away: a host joins through node 2.
    const key = join(n2.poolDir, 'server', 'tls', 'ca-key.pem');
    await writeFile(key, await readFile(join(n1.poolDir, 'server', 'tls', 'ca-key.pem')), { mode: 0o600 });
    await n1.ok(['cluster', 'stop', '--use-pool-dir', n1.poolDir]);
    const out = await spare.ok(joinArgs(spare, t));
    assert.match(out, /this node joined the cluster through/);
    const { ApiKey } = JSON.parse(await n2.ok(['debug', 'GetApiKey'])) as { ApiKey: string };
    await spare.ok(['remote', 'add', 'local', `admin@${spare.host.address}:${spare.port}`], { DOTMESH_PASSWORD: ApiKey });
    const id = await nodeIdOf(spare);
    const nodes = JSON.parse(await n2.ok(['debug', 'DumpInternalState', 'nodes.'])) as Record<string, string>;
    assert.equal(nodes[`nodes.${id}.addresses`], spare.host.address, 'node 2 sees the new node');
    assert.match(await spare.ok(['list', '-H']), /^docs\t/m, 'the new node answers for the cluster');
    await n1.ok(['cluster', 'start', '--use-pool-dir', n1.poolDir, '--server-bin', SERVER_BUNDLE]);
  });

  test('a pool whose node is live is refused as a clash; once its lease expired, it rejoins as that node with new certificates', async () => {
    // The spare host joined through node 2 (the test before). A join naming its live node id is
    // refused by the node, and uses no token: sent by hand, with a request for a fresh key.
    const spareId = await nodeIdOf(spare);
    const t = await token('rejoin');
    const [id, secret] = (await readFile(t.file, 'utf8')).trim().split('.') as [string, string];
    const dir = await makeTempDir('clash', cleanup);
    await n1.host.exec('openssl', [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/CN=x',
      '-keyout',
      join(dir, 'k.pem'),
      '-out',
      join(dir, 'r.csr'),
    ]);
    const body = JSON.stringify({
      Token: `${id}.${secret}`,
      NodeId: spareId,
      NodeCsr: await readFile(join(dir, 'r.csr'), 'utf8'),
      Addresses: [n1.host.address],
      HttpsCsr: null,
    });
    await writeFile(join(dir, 'body.json'), body, { mode: 0o600 });
    const { stdout } = await n1.host.exec('curl', [
      '-sS',
      '--cacert',
      join(n1.poolDir, 'server', 'tls', 'ca.pem'),
      '-H',
      'Content-Type: application/json',
      '--data-binary',
      `@${join(dir, 'body.json')}`,
      '-w',
      '\n%{http_code}',
      `https://${n1.host.address}:${n1.clusterPort}/join/v1/node`,
    ]);
    assert.match(stdout, /\n409$/, stdout);
    assert.match(stdout, new RegExp(`node id ${spareId} is already live at ${spare.host.address.replaceAll('.', '\\.')}`));
    assert.match(await n1.ok(['cluster', 'token', 'list']), new RegExp(`^${id}\\s+\\S+\\s+1$`, 'm'), 'the token was not used');

    // The spare's node goes away; once its lease expired, the same pool joins again as that node.
    const before = new X509Certificate(await readFile(join(spare.poolDir, 'server', 'tls', 'node.pem')));
    await spare.ok(['cluster', 'stop', '--use-pool-dir', spare.poolDir]);
    const deadline = Date.now() + 30_000;
    while ((await etcd.keys(`dotmesh.io/servers/addresses/${spareId}`)).length > 0) {
      assert.ok(Date.now() < deadline, 'the stopped node’s lease did not expire within 30 s');
      await new Promise((r) => setTimeout(r, 500));
    }
    const out = await spare.ok(joinArgs(spare, t));
    assert.match(out, /this node joined the cluster through/);
    assert.equal(await nodeIdOf(spare), spareId, 'the same node');
    const after = new X509Certificate(await readFile(join(spare.poolDir, 'server', 'tls', 'node.pem')));
    assert.notEqual(after.serialNumber, before.serialNumber, 'a newly issued certificate');
    assert.ok(after.subject.split('\n').includes(`CN=${spareId}`));
  });

  test('a host whose node belongs to another cluster is refused before it sends its token', async () => {
    // The spare host runs a cluster of its own first (on a pool dir of its own), then that node
    // tries to join this cluster.
    const other = await node(spare.host);
    await other.ok(['cluster', 'init', ...other.nodeArgs(), '--cluster-port', '0']);
    await other.ok(['cluster', 'stop', '--use-pool-dir', other.poolDir]);
    const t = await token('other-cluster');
    const [id] = (await readFile(t.file, 'utf8')).trim().split('.');
    const before = await etcdFacts();
    const r = await other.dm(joinArgs(other, t));
    assert.notEqual(r.code, 0);
    assert.match(`${r.stdout}${r.stderr}`, /this host's node belongs to another cluster/);
    assert.deepEqual(await etcdFacts(), before, 'nothing in etcd changed');
    assert.match(await n1.ok(['cluster', 'token', 'list']), new RegExp(`^${id}\\s+\\S+\\s+1$`, 'm'), 'the token was not used');
  });

  test('a single-node cluster moves from the embedded store to etcd with one init: dots, branches, users, a process and a running Docker container using a dot are kept', {
    skip: skipUnless(['docker']),
  }, async () => {
    const etcd2 = await startEtcdIn({ cleanup, host: etcd.host });
    // A real dockerd whose volume plugin is this node's.
    const d = await startTestDocker(cleanup);
    const m = await makeHostNode(cleanup, n3.host, [
      '--docker-plugin-socket',
      d.pluginSocket,
      '--docker-socket',
      d.engine.socket,
    ]);
    await m.ok(['cluster', 'init', ...m.nodeArgs(), '--cluster-port', '0']);
    d.removeContainersAtCleanup();
    await m.ok(['init', 'kept']);
    const mnt = join(m.home, 'kept-mnt');
    await m.ok(['mount', 'kept', mnt]);
    await writeFile(join(mnt, 'committed'), 'one');
    await m.ok(['switch', 'kept']);
    await m.ok(['commit', '-m', 'before the move']);
    await m.ok(['checkout', '-b', 'side']);
    await m.ok(['checkout', 'master']);
    await writeFile(join(mnt, 'uncommitted'), 'two');
    await m.ok([
      'debug',
      'RegisterNewUser',
      JSON.stringify({ Name: 'bob', Email: 'bob@example.com', Password: 'bob-password-1' }),
    ]);
    // A process working in the dot, and a container using it, keep running across the move.
    const worker = m.host.spawn('sh', ['-c', `cd ${mnt} && exec sleep 600`], { cleanup });
    await d.start('keeper', 'kept');
    const before = { log: await m.ok(['log']), branches: await m.ok(['branch']), list: await m.ok(['list', '-H']) };
    const apiKey = (JSON.parse(await m.ok(['debug', 'GetApiKey'])) as { ApiKey: string }).ApiKey;

    await m.ok(['cluster', 'stop', '--use-pool-dir', m.poolDir]);
    const out = await m.ok([
      'cluster',
      'init',
      ...m.nodeArgs(),
      '--store',
      'etcd',
      '--etcd-endpoints',
      etcd2.endpoints.join(','),
    ]);
    assert.match(out, /Moving the cluster store .*store\.db into etcd at/);
    assert.match(out, /The cluster keeps its admin password, API keys and users/);
    assert.ok(existsSync(join(m.poolDir, 'server', 'store.db.imported')), 'the embedded store is kept as a backup');
    assert.equal((JSON.parse(await m.ok(['debug', 'GetApiKey'])) as { ApiKey: string }).ApiKey, apiKey, 'the same admin key');
    assert.equal(await m.ok(['log']), before.log);
    assert.equal(await m.ok(['branch']), before.branches);
    assert.equal(await m.ok(['list', '-H']).then((l) => l.split('\t')[0]), before.list.split('\t')[0]);
    assert.equal(await readFile(join(mnt, 'uncommitted'), 'utf8'), 'two', 'uncommitted data is still there');
    assert.equal(
      await readFile(join('/proc', String(worker.pid), 'cwd', 'committed'), 'utf8'),
      'one',
      'the worker still sees its files',
    );
    const inContainer = (file: string) => d.docker(['exec', 'keeper', 'cat', `/foo/${file}`]);
    assert.equal((await d.docker(['inspect', '-f', '{{.State.Running}}', 'keeper'])).trim(), 'true');
    assert.equal(await inContainer('committed'), 'one', 'the container still sees its files');
    assert.equal(await inContainer('uncommitted'), 'two');
    await d.docker(['exec', 'keeper', 'sh', '-c', 'echo three > /foo/written-after']);
    assert.equal(await readFile(join(mnt, 'written-after'), 'utf8'), 'three\n', 'and writes into the dot');
    await d.docker(['rm', '-f', 'keeper']);
    await m.ok(['remote', 'add', 'asbob', `bob@${m.host.address}:${m.port}`], { DOTMESH_PASSWORD: 'bob-password-1' });
    const keys = (await etcd2.keys('dotmesh.io/')).map((kv) => kv.key);
    assert.ok(
      keys.some((k) => k.startsWith('dotmesh.io/registry/filesystems/admin/kept')),
      'the dot is in etcd',
    );
    assert.ok(
      keys.some((k) => k.startsWith('dotmesh.io/users/nameidx/bob')),
      'bob is in etcd',
    );
    await worker.stop();
    // A push from this cluster to the three-node one, whose node it trusts by the CA pin.
    const { caHash } = await token('for-the-push', ['--ttl', '60s']);
    const { ApiKey } = JSON.parse(await n1.ok(['debug', 'GetApiKey'])) as { ApiKey: string };
    await m.ok(['remote', 'add', 'prod', `admin@${n1.host.address}:${n1.tlsPort}`, '--trust-ca', caHash], {
      DOTMESH_PASSWORD: ApiKey,
    });
    await m.ok(['remote', 'switch', 'local']);
    await m.ok(['push', 'prod', 'kept']);
    assert.match(await n2.ok(['list', '-H']), /^kept\t/m, 'the pushed dot is in the three-node cluster');
  });
});
