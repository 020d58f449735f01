import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CallParamsOf, TransferPollResult } from '@dotmesh/rpc';
import { publicKeyPin } from '@dotmesh/rpc/tls';
import {
  Cleanup,
  createHosts,
  SERVER_BUNDLE,
  type ServerProcess,
  skipUnless,
  startServerProcess,
  type TestHost,
} from '@dotmesh/testkit';
import { waitForTransfer } from './transfer-harness.ts';

/**
 * Pushes over HTTPS to a pinned peer between real btrfs servers in network namespaces: the
 * commit stream moves on a data connection of the pumps' own (docs/decisions.md, "Commit
 * streams over HTTPS"), and either side with `transferDataConnections: false` falls back to
 * the stream on the upgraded connection. Every case compares file hashes on both sides; the
 * receiver's log says which route the stream took. A connection naming a made-up stream is
 * closed without touching the HTTPS API on the same port.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup']);
const TLS_PORT = 32606; // inside each server's own network namespace
const TIMING = { transferIdleTimeoutMs: 5000, transferAttempts: 1, transferBackoffMs: 200 };
const ROUTE_LOG = 'commit stream arriving on a data connection';

interface Side {
  readonly name: string;
  readonly host: TestHost;
  readonly server: ServerProcess;
  readonly fingerprint: string;
  /** Pin of its cluster CA, `sha256:<hex of the SubjectPublicKeyInfo>`. */
  readonly caPin: string;
}

describe('commit streams over HTTPS on data connections of the pumps', { skip }, () => {
  const cleanup = new Cleanup();
  /** on: data connections allowed (the default); off: transferDataConnections false. */
  let on1: Side;
  let on2: Side;
  let off: Side;

  before(async () => {
    const hosts = (await createHosts({ cleanup, count: 3 })) as [TestHost, TestHost, TestHost];
    const start = async (name: string, host: TestHost, extra: Record<string, unknown>): Promise<Side> => {
      const server = await startServerProcess({
        cleanup,
        host,
        serverBin: SERVER_BUNDLE,
        poolSize: '2G',
        extraConfig: { ...TIMING, tlsPort: TLS_PORT, tlsSubjectAltNames: [host.address], ...extra },
      });
      const tlsDir = join(server.dir, 'server', 'tls');
      const pem = await readFile(join(tlsDir, 'server.pem'));
      const caPin = publicKeyPin(new X509Certificate(await readFile(join(tlsDir, 'ca.pem'))));
      return { name, host, server, fingerprint: new X509Certificate(pem).fingerprint256, caPin };
    };
    [on1, on2, off] = await Promise.all([
      start('on1', hosts[0], {}),
      start('on2', hosts[1], {}),
      start('off', hosts[2], { transferDataConnections: false }),
    ]);
  });
  after(() => cleanup.run());

  const logs = async () =>
    (await Promise.all([on1, on2, off].map(async (s) => `${s.name}:\n${(await s.server.log()).slice(-3000)}`))).join('\n');
  const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  const procure = (s: Side, dot: string) => s.server.admin.call('Procure', { Namespace: 'admin', Name: dot, Subdot: '' });
  const routed = async (s: Side) => (await s.server.log()).split(ROUTE_LOG).length - 1;

  /** plainHttp: to the API port without TLS; caPin: trusted by its cluster CA rather than its certificate. */
  type Route = { plainHttp?: boolean; caPin?: boolean };
  const request = (dot: string, to: Side, o: Route = {}): CallParamsOf<'Transfer'> => ({
    Peer: to.host.address,
    User: 'admin',
    Port: o.plainHttp ? to.server.port : TLS_PORT,
    ApiKey: to.server.apiKey,
    Direction: 'push',
    LocalNamespace: 'admin',
    LocalName: dot,
    LocalBranchName: '',
    RemoteNamespace: 'admin',
    RemoteName: dot,
    RemoteBranchName: '',
    TargetCommit: '',
    StashDivergence: false,
    PeerCertSha256: o.plainHttp || o.caPin ? '' : to.fingerprint,
    PeerHttps: !o.plainHttp,
    ...(o.caPin ? { PeerCaPin: to.caPin } : {}),
  });

  const waitTransfer = async (from: Side, id: string): Promise<TransferPollResult> =>
    (await waitForTransfer(from.server.admin, id, { diagnostics: logs })).final;

  /**
   * A dot with `bytes` of random data and a second, incremental commit on `from`, pushed in
   * two steps to `to`; asserts the hashes and commits there. Returns how many commit streams
   * `to` took on data connections meanwhile, and how many commits the dot has (a new dot's
   * first commit included).
   */
  async function pushAndCompare(
    from: Side,
    to: Side,
    dot: string,
    bytes: number,
    o: Route = {},
  ): Promise<{ routed: number; commits: number }> {
    const before = await routed(to);
    const path = await procure(from, dot);
    const big = randomBytes(bytes);
    await writeFile(join(path, 'big.bin'), big);
    await from.server.admin.call('Commit', { Namespace: 'admin', Name: dot, Branch: '', Message: 'one', Metadata: {} });
    const first = await waitTransfer(from, await from.server.admin.call('Transfer', request(dot, to, o)));
    assert.equal(first.Status, 'finished', `${first.Message}\n${await logs()}`);
    const more = randomBytes(1024 * 1024);
    await writeFile(join(path, 'more.bin'), more);
    await from.server.admin.call('Commit', { Namespace: 'admin', Name: dot, Branch: '', Message: 'two', Metadata: {} });
    const second = await waitTransfer(from, await from.server.admin.call('Transfer', request(dot, to, o)));
    assert.equal(second.Status, 'finished', `${second.Message}\n${await logs()}`);
    const there = await procure(to, dot);
    assert.equal(sha(await readFile(join(there, 'big.bin'))), sha(big));
    assert.equal(sha(await readFile(join(there, 'more.bin'))), sha(more));
    const commits = async (s: Side) =>
      (await s.server.admin.call('Commits', { Namespace: 'admin', Name: dot, Branch: '' })).map((c) => c.Id);
    const received = await commits(to);
    assert.deepEqual(received, await commits(from));
    return { routed: (await routed(to)) - before, commits: received.length };
  }

  test('a push over HTTPS to a pinned peer moves both commits on data connections; hashes equal', async () => {
    const r = await pushAndCompare(on1, on2, 'both-on', 64 * 1024 * 1024);
    assert.ok(r.commits >= 2);
    assert.equal(r.routed, r.commits, 'every commit stream on a data connection');
  });

  test('trusted by the pinned cluster CA instead: the pumps check the chain the TLS port sends; hashes equal', async () => {
    const r = await pushAndCompare(on1, on2, 'ca-pinned', 8 * 1024 * 1024, { caPin: true });
    assert.equal(r.routed, r.commits, 'every commit stream on a data connection');
  });

  test('a receiver with data connections off answers without them: the stream goes on the upgraded connection', async () => {
    assert.equal((await pushAndCompare(on1, off, 'receiver-off', 16 * 1024 * 1024)).routed, 0);
  });

  test('a sender with data connections off never asks: the stream goes on the upgraded connection', async () => {
    assert.equal((await pushAndCompare(off, on2, 'sender-off', 16 * 1024 * 1024)).routed, 0);
  });

  test('a connection naming a made-up stream is closed before any handshake; the HTTPS API on that port still answers', async () => {
    const id = randomBytes(16).toString('hex');
    const stray = await on1.host
      .exec(
        'openssl',
        ['s_client', '-connect', `${on2.host.address}:${TLS_PORT}`, '-alpn', `dotmesh-commit-stream/1:${id}`, '-brief'],
        { timeoutMs: 20_000 },
      )
      .then(
        (r) => `exit 0: ${r.stdout}${r.stderr}`,
        (e: Error) => e.message,
      );
    assert.doesNotMatch(stray, /CONNECTION ESTABLISHED|Protocol version/i, stray);
    assert.match((await on2.server.log()).slice(-20_000), /refused a data connection for a commit stream that is not expected/);
    // the API over HTTPS on the same port, pinned: a transfer to it still works
    const r = await pushAndCompare(on1, on2, 'after-stray', 4 * 1024 * 1024);
    assert.equal(r.routed, r.commits);
  });

  test('after pushes over HTTPS and over plain HTTP, every server stops (no connection of a stream left open)', async () => {
    assert.equal((await pushAndCompare(on1, on2, 'plain-http', 4 * 1024 * 1024, { plainHttp: true })).routed, 0);
    for (const s of [on2, off, on1]) {
      const stopped = await Promise.race([s.server.stop().then(() => 'stopped'), sleep(60_000).then(() => 'still running')]);
      assert.equal(stopped, 'stopped', `${s.name} did not finish stopping within 60 s\n${await logs()}`);
    }
  });
});
