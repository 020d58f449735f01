import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import { isDotmeshError } from '@dotmesh/core';
import type { CallParamsOf } from '@dotmesh/rpc';
import {
  Cleanup,
  createHosts,
  routeCheck,
  SERVER_BUNDLE,
  type ServerProcess,
  skipUnless,
  startServerProcess,
  type TestHost,
  waitFor,
} from '@dotmesh/testkit';
import { waitForTransfer } from './transfer-harness.ts';

/**
 * Transfers between two real btrfs servers, each in its own network namespace (the kit's
 * veths between them), driven through the RPC API: integrity end to end (file hashes), HTTPS
 * with a pinned certificate, and the faults of R2 — bytes flipped on the way, a link that goes
 * silent mid-stream, the receiver killed mid-stream — each ending in a completed retry or a
 * clear error, never a partial commit. The user-level scenarios (dm push/pull/clone) are in
 * transfer.test.ts.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup']);
const IDLE_MS = 5000;

interface Side {
  readonly host: TestHost;
  server: ServerProcess;
}

const TIMING = { transferIdleTimeoutMs: IDLE_MS, transferAttempts: 3, transferBackoffMs: 300 };

describe('transfers between two btrfs servers in network namespaces', { skip }, () => {
  const cleanup = new Cleanup();
  let a: Side;
  let b: Side;
  let bFingerprint: string;
  let bTlsPort: number;

  before(async () => {
    const [ha, hb] = (await createHosts({ cleanup, count: 2 })) as [TestHost, TestHost];
    const timing = TIMING;
    bTlsPort = 32606; // inside B's own network namespace: free whatever runs on the host
    [a, b] = await Promise.all([
      startServerProcess({ cleanup, host: ha, serverBin: SERVER_BUNDLE, poolSize: '4G', extraConfig: timing }).then((server) => ({
        host: ha,
        server,
      })),
      startServerProcess({
        cleanup,
        host: hb,
        serverBin: SERVER_BUNDLE,
        poolSize: '4G',
        extraConfig: { ...timing, tlsPort: bTlsPort, tlsSubjectAltNames: [hb.address] },
      }).then((server) => ({ host: hb, server })),
    ]);
    bFingerprint = new X509Certificate(await readFile(join(b.server.dir, 'server', 'tls', 'server.pem'))).fingerprint256;
  });
  after(() => cleanup.run());

  const request = (o: {
    dot: string;
    direction?: 'push' | 'pull';
    port?: number;
    pin?: string;
    to?: ServerProcess;
  }): CallParamsOf<'Transfer'> => ({
    Peer: b.host.address,
    User: 'admin',
    Port: o.port ?? (o.to ?? b.server).port,
    ApiKey: (o.to ?? b.server).apiKey,
    Direction: o.direction ?? 'push',
    LocalNamespace: 'admin',
    LocalName: o.dot,
    LocalBranchName: '',
    RemoteNamespace: 'admin',
    RemoteName: o.dot,
    RemoteBranchName: '',
    TargetCommit: '',
    StashDivergence: false,
    PeerCertSha256: o.pin ?? '',
    PeerHttps: false,
  });

  const logs = async () => `A:\n${(await a.server.log()).slice(-4000)}\nB:\n${(await b.server.log()).slice(-4000)}`;

  /** Polls A (every transfer here starts there) until the transfer ends; the final record and every status seen. */
  const waitTransfer = (id: string, timeoutMs = 120_000) => waitForTransfer(a.server.admin, id, { timeoutMs, diagnostics: logs });

  const procure = (s: Side, dot: string) => s.server.admin.call('Procure', { Namespace: 'admin', Name: dot, Subdot: '' });
  const commitsOf = async (s: Side, dot: string) =>
    (await s.server.admin.call('Commits', { Namespace: 'admin', Name: dot, Branch: '' })).map((c) => c.Id);
  const commit = (s: Side, dot: string, message: string) =>
    s.server.admin.call('Commit', { Namespace: 'admin', Name: dot, Branch: '', Message: message, Metadata: { step: message } });
  const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  /** Incompressible bytes (`seed` only labels the file in failures). */
  const blob = (bytes: number, _seed: string) => randomBytes(bytes);

  /**
   * Limits what A sends to B to ~25 MB/s (a token bucket on A's veth), so a push takes seconds
   * and a fault injected after its first MiB lands mid-stream however fast the machine is
   * (unthrottled, 256 MiB can be out between a poll and the fault). `fullSpeed` lifts it.
   */
  const throttle = () =>
    a.host.exec('tc', [
      'qdisc',
      'replace',
      'dev',
      a.host.devices[0]!,
      'root',
      'tbf',
      'rate',
      '200mbit',
      'burst',
      '256kb',
      'latency',
      '200ms',
    ]);
  const fullSpeed = () => a.host.exec('tc', ['qdisc', 'del', 'dev', a.host.devices[0]!, 'root']).catch(() => undefined);
  afterEach(fullSpeed);

  /**
   * Writes `mib` MiB of random data into the dot `data` on A, commits it and starts pushing it
   * to B over the throttled link; resolves once more than 1 MiB went out and the push is still
   * running, so that a fault lands mid-stream (fails if the push ended first). The test lifts
   * the throttle (`fullSpeed`) once its fault is in.
   */
  async function startBigPush(file: string, mib: number): Promise<{ id: string; payload: Buffer; before: string[] }> {
    const payload = blob(mib * 1024 * 1024, file);
    await writeFile(join(await procure(a, 'data'), file), payload);
    await commit(a, 'data', file);
    const before = await commitsOf(b, 'data');
    await throttle();
    const id = await a.server.admin.call('Transfer', request({ dot: 'data' }));
    await waitFor(
      async () => {
        const r = await a.server.admin.call('GetTransfer', id);
        if (r.Status === 'finished' || r.Status === 'error')
          throw new Error(`the push ended before the fault: ${r.Status} ${r.Message}`);
        return r.Status === 'pushing' && r.Sent > 1024 * 1024;
      },
      { timeoutMs: 120_000, intervalMs: 20, what: `${file}: the push streaming its first MiB` },
    );
    return { id, payload, before };
  }

  /** The failed attempts of transfer `id` that A's log records (the engine logs each one). */
  async function failedAttempts(id: string): Promise<Array<{ attempt: number; err: string; retry: boolean }>> {
    return (await a.server.log())
      .split('\n')
      .filter((line) => line.includes('"transfer attempt failed"') && line.includes(id))
      .map((line) => JSON.parse(line) as { attempt: number; err: string; retry: boolean });
  }

  test('push and pull over plain HTTP: same commits, metadata and file hashes on both sides', async () => {
    const pathA = await procure(a, 'data');
    const big = blob(8 * 1024 * 1024, 'one');
    await writeFile(join(pathA, 'big.bin'), big);
    await commit(a, 'data', 'first');
    const id = await a.server.admin.call('Transfer', request({ dot: 'data' }));
    const { final } = await waitTransfer(id);
    assert.equal(final.Status, 'finished', final.Message);
    assert.equal(final.ApiKey, '');
    assert.ok(final.Sent >= big.length, `Sent ${final.Sent} covers the file`);
    assert.deepEqual(await commitsOf(b, 'data'), await commitsOf(a, 'data'));
    const pathB = await procure(b, 'data');
    assert.equal(sha(await readFile(join(pathB, 'big.bin'))), sha(big));

    // a change on B comes back with a pull, incrementally
    await writeFile(join(pathB, 'from-b.txt'), 'written on b');
    await commit(b, 'data', 'on b');
    const pull = await waitTransfer(await a.server.admin.call('Transfer', request({ dot: 'data', direction: 'pull' })));
    assert.equal(pull.final.Status, 'finished', pull.final.Message);
    assert.ok(pull.final.Sent < 1024 * 1024, `an incremental pull sends little (${pull.final.Sent} bytes)`);
    assert.equal(await readFile(join(pathA, 'from-b.txt'), 'utf8'), 'written on b');
    const metaA = await a.server.admin.call('Commits', { Namespace: 'admin', Name: 'data', Branch: '' });
    const metaB = await b.server.admin.call('Commits', { Namespace: 'admin', Name: 'data', Branch: '' });
    assert.deepEqual(metaA, metaB);
  });

  test('over HTTPS with the peer’s certificate pinned; a wrong pin is refused before anything moves', async () => {
    const pathA = await procure(a, 'data');
    await writeFile(join(pathA, 'tls.txt'), 'over tls');
    await commit(a, 'data', 'tls');
    const wrongPin = `${bFingerprint.slice(0, -2)}${bFingerprint.endsWith('00') ? '11' : '00'}`;
    await assert.rejects(
      a.server.admin.call('Transfer', request({ dot: 'data', port: bTlsPort, pin: wrongPin })),
      (e: unknown) => {
        assert.ok(isDotmeshError(e));
        assert.match(e.message, /certificate|fingerprint/i);
        return true;
      },
    );
    assert.notEqual((await commitsOf(b, 'data')).at(-1), (await commitsOf(a, 'data')).at(-1));
    const { final } = await waitTransfer(
      await a.server.admin.call('Transfer', request({ dot: 'data', port: bTlsPort, pin: bFingerprint })),
    );
    assert.equal(final.Status, 'finished', final.Message);
    assert.equal(await readFile(join(await procure(b, 'data'), 'tls.txt'), 'utf8'), 'over tls');
  });

  test('a byte flipped on the way fails the checksum; the retry completes; no bad commit is visible', async () => {
    const pathA = await procure(a, 'data');
    const payload = blob(2 * 1024 * 1024, 'flip');
    await writeFile(join(pathA, 'flip.bin'), payload);
    await commit(a, 'data', 'flip');
    await a.server.admin.call('SetDebugFlag', { FlagName: 'transfer.corrupt-stream', FlagValue: 'error' });
    const id = await a.server.admin.call('Transfer', request({ dot: 'data' }));
    const { final, seen } = await waitTransfer(id);
    assert.equal(final.Status, 'finished', final.Message);
    // The corrupted attempt failed its checksum and was retried (A's log keeps every failed
    // attempt; a poll may miss the short "retry 1" status on a busy machine).
    const failed = await waitFor(async () => (await failedAttempts(id)).find((f) => /checksum mismatch/.test(f.err)), {
      what: `the corrupted attempt in A’s log (statuses: ${seen.join(' → ')})`,
    });
    assert.equal(failed.retry, true);
    assert.equal(sha(await readFile(join(await procure(b, 'data'), 'flip.bin'))), sha(payload));
    assert.deepEqual(await commitsOf(b, 'data'), await commitsOf(a, 'data'));
  });

  test('a link that goes silent mid-stream is detected within the idle timeout; the retry completes', async () => {
    const dev = a.host.devices[0]!;
    // once bytes flow, drop every packet (no RST: the link is simply gone)
    const { id, payload, before } = await startBigPush('silent.bin', 192);
    await a.host.exec('ip', ['link', 'set', dev, 'down']);
    const downAt = Date.now();
    await fullSpeed();
    let sawRetry = false;
    try {
      for (;;) {
        const r = await a.server.admin.call('GetTransfer', id).catch(() => undefined);
        if (r && (r.Status.startsWith('retry') || r.Status === 'error' || r.Status === 'finished')) {
          sawRetry = r.Status.startsWith('retry') || r.Status === 'error';
          break;
        }
        if (Date.now() - downAt > IDLE_MS + 15_000) break;
        await sleep(200);
      }
    } finally {
      await a.host.exec('ip', ['link', 'set', dev, 'up']);
    }
    assert.ok(sawRetry, 'the silent link ended the attempt');
    assert.ok(Date.now() - downAt < IDLE_MS + 15_000, 'within the idle timeout (and a margin)');
    // while down, B never shows a partial commit
    const during = await commitsOf(b, 'data');
    assert.ok(during.length <= before.length + 1);
    const { final } = await waitTransfer(id, 240_000);
    if (final.Status !== 'finished') {
      // every attempt may have been used while the link was down: a re-run resumes
      const rerun = await waitTransfer(await a.server.admin.call('Transfer', request({ dot: 'data' })), 240_000);
      assert.equal(rerun.final.Status, 'finished', `${rerun.final.Message}\n${await logs()}`);
    }
    assert.deepEqual(await commitsOf(b, 'data'), await commitsOf(a, 'data'));
    assert.equal(sha(await readFile(join(await procure(b, 'data'), 'silent.bin'))), sha(payload));
  });

  test('a connection reset mid-stream (RST) is retried at once and the transfer completes', async () => {
    const { id, payload } = await startBigPush('reset.bin', 160);
    // Kill the TCP connections from A to B's API port, from inside A (B sees an RST), while the
    // push is streaming: its connection is among them. ss -K prints each socket it closed.
    const filter = ['state', 'established', 'dst', b.host.address, 'dport', '=', `:${b.server.port}`];
    const killed = (await a.host.exec('ss', ['-HK', ...filter])).stdout.trim();
    assert.notEqual(killed, '', `no connection from A to B to kill: ${(await a.server.admin.call('GetTransfer', id)).Status}`);
    await fullSpeed();
    const { final, seen } = await waitTransfer(id);
    assert.equal(final.Status, 'finished', `${final.Message} (${seen.join(' → ')})`);
    // The kill hit the transfer: an attempt failed on the cut connection and was retried (the log
    // keeps it; a poll may miss the short "retry 1" status on a busy machine).
    const attempts = await waitFor(async () => ((await failedAttempts(id)).length > 0 ? failedAttempts(id) : undefined), {
      what: `a failed attempt in A’s log (statuses: ${seen.join(' → ')}; killed: ${killed})`,
    });
    const failed = attempts.find((f) => /ECONNABORTED|ECONNRESET|EPIPE|connection was closed before the answer/.test(f.err));
    assert.ok(failed, `the attempt cut by ss -K among: ${attempts.map((f) => f.err).join('; ')}`);
    assert.equal(failed.retry, true, failed.err);
    assert.deepEqual(await commitsOf(b, 'data'), await commitsOf(a, 'data'));
    assert.equal(sha(await readFile(join(await procure(b, 'data'), 'reset.bin'))), sha(payload));
  });

  test('the receiver killed mid-stream: the transfer ends in a clear error, no partial commit; a re-run after restart completes', async () => {
    const { id, payload, before } = await startBigPush('kill.bin', 256);
    await b.server.kill9();
    await fullSpeed();
    const { final } = await waitTransfer(id);
    b.server = await b.server.restart(); // first, so that a failed check leaves B serving the next tests
    assert.equal(final.Status, 'error');
    assert.match(final.Message, /cannot reach|sent nothing|closed|reset|socket hang up|ECONN/i);
    assert.deepEqual(await commitsOf(b, 'data'), before, 'no partial commit after the restart');
    const rerun = await waitTransfer(await a.server.admin.call('Transfer', request({ dot: 'data' })));
    assert.equal(rerun.final.Status, 'finished', rerun.final.Message);
    assert.equal(sha(await readFile(join(await procure(b, 'data'), 'kill.bin'))), sha(payload));
  });

  test('the initiator killed mid-stream: the peer drops the partial commit; after a restart the record says re-run, and the re-run completes', async () => {
    const { id, payload, before } = await startBigPush('initiator.bin', 256);
    await a.server.kill9();
    await fullSpeed();
    // the peer notices within its idle timeout, discards the partial stream and keeps serving
    await sleep(IDLE_MS + 1000);
    const onPeer = await commitsOf(b, 'data');
    a.server = await a.server.restart(); // first, so that a failed check leaves A serving the next tests
    assert.deepEqual(onPeer, before);
    const record = await a.server.admin.call('GetTransfer', id);
    assert.equal(record.Status, 'error');
    assert.match(record.Message, /interrupted by a restart.*run it again/);
    assert.equal(record.ApiKey, '');
    const rerun = await waitTransfer(await a.server.admin.call('Transfer', request({ dot: 'data' })));
    assert.equal(rerun.final.Status, 'finished', rerun.final.Message);
    assert.equal(sha(await readFile(join(await procure(b, 'data'), 'initiator.bin'))), sha(payload));
  });

  test('a full receiving pool: a clear POOL_FULL error, no partial commit, both servers keep serving', async () => {
    const small = await startServerProcess({
      cleanup,
      host: b.host,
      serverBin: SERVER_BUNDLE,
      poolSize: '320M',
      extraConfig: TIMING,
    });
    const pathA = await procure(a, 'fills');
    await writeFile(join(pathA, 'small.txt'), 'fits');
    await commit(a, 'fills', 'fits');
    const first = await waitTransfer(await a.server.admin.call('Transfer', request({ dot: 'fills', to: small })));
    assert.equal(first.final.Status, 'finished', first.final.Message);
    const before = (await small.admin.call('Commits', { Namespace: 'admin', Name: 'fills', Branch: '' })).map((c) => c.Id);
    await writeFile(join(pathA, 'huge.bin'), blob(512 * 1024 * 1024, 'huge'));
    await commit(a, 'fills', 'too big');
    const { final } = await waitTransfer(await a.server.admin.call('Transfer', request({ dot: 'fills', to: small })));
    assert.equal(final.Status, 'error');
    assert.match(final.Message, /pool .* is full/i);
    const after = (await small.admin.call('Commits', { Namespace: 'admin', Name: 'fills', Branch: '' })).map((c) => c.Id);
    assert.deepEqual(after, before, 'no partial commit on the full side');
    assert.equal(await small.admin.call('Ping', null), true);
    // the receiver still takes what fits, after its space is back
    await a.server.admin.call('Rollback', { Namespace: 'admin', Name: 'fills', Branch: '', SnapshotId: before.at(-1)! });
    await writeFile(join(pathA, 'small2.txt'), 'fits too');
    await commit(a, 'fills', 'fits again');
    const again = await waitTransfer(await a.server.admin.call('Transfer', request({ dot: 'fills', to: small })));
    assert.equal(again.final.Status, 'finished', again.final.Message);
    assert.equal(await readFile(join(await procure({ host: b.host, server: small }, 'fills'), 'small2.txt'), 'utf8'), 'fits too');
  });

  test('a crafted stream whose parent is another dot’s commit is refused by the receiver; nothing changes', async () => {
    // On A: dots x and y, both pushed to B; then a new commit on y.
    for (const dot of ['victim', 'thief']) {
      await writeFile(join(await procure(a, dot), 'file'), `${dot} data`);
      await commit(a, dot, `${dot} 1`);
      assert.equal((await waitTransfer(await a.server.admin.call('Transfer', request({ dot })))).final.Status, 'finished');
    }
    await writeFile(join(await procure(a, 'thief'), 'file'), 'thief data 2');
    const thief2 = await commit(a, 'thief', 'thief 2');
    const victimId = await a.server.admin.call('Lookup', { Namespace: 'admin', Name: 'victim', Branch: '' });
    const thiefId = await a.server.admin.call('Lookup', { Namespace: 'admin', Name: 'thief', Branch: '' });
    const [victim1] = (await commitsOf(a, 'victim')).slice(-1);
    const [thief1] = (await commitsOf(a, 'thief')).slice(-2, -1);
    const commitPath = (fsId: string, c: string) => join(a.server.dir, 'mnt', 'fs', fsId, 'commits', c, c);
    // The stream: thief's new commit, incremental from thief's previous one (another dot's
    // commit as far as the victim is concerned), described as the victim's next commit.
    const raw = execFileSync('btrfs', ['send', '-q', '-p', commitPath(thiefId, thief1!), commitPath(thiefId, thief2)], {
      maxBuffer: 256 * 1024 * 1024,
    });
    // framed as transfer protocol v1 does (packages/server/src/transfer/frames.ts), checksums right
    assert.ok(raw.length <= 4 * 1024 * 1024, 'fits one frame');
    const dataFrame = Buffer.alloc(9);
    dataFrame.writeUInt8(1, 0);
    dataFrame.writeUInt32BE(raw.length + 4, 1);
    dataFrame.writeUInt32BE(crc32(raw), 5);
    const endFrame = Buffer.alloc(17);
    endFrame.writeUInt8(2, 0);
    endFrame.writeUInt32BE(12, 1);
    endFrame.writeBigUInt64BE(BigInt(raw.length), 5);
    endFrame.writeUInt32BE(1, 13); // one data frame
    const body = Buffer.concat([dataFrame, raw, endFrame]);
    const bodyFile = join(a.server.dir, 'crafted.bin');
    await writeFile(bodyFile, body);
    const descriptor = {
      volume: { dot: { id: victimId, namespace: 'admin', name: 'victim' }, fsId: victimId, branch: 'master', origin: null },
      commitId: thief2,
      parent: { fsId: victimId, commitId: victim1 },
      targetFsId: victimId,
    };
    const before = await commitsOf(b, 'victim');
    await routeCheck(a.host, b.host.address);
    const { stdout } = await a.host.exec('curl', [
      '-sS',
      '-u',
      `admin:${b.server.apiKey}`,
      '-H',
      `x-dotmesh-commit: ${Buffer.from(JSON.stringify(descriptor)).toString('base64url')}`,
      '-H',
      'content-type: application/octet-stream',
      '--data-binary',
      `@${bodyFile}`,
      `http://${b.host.address}:${b.server.port}/transfer/v1/receive`,
    ]);
    const answer = JSON.parse(stdout) as { error?: { code: string; message: string } };
    assert.equal(answer.error?.code, 'INVALID_ARGUMENT', stdout);
    assert.match(answer.error!.message, /parent/);
    assert.deepEqual(await commitsOf(b, 'victim'), before, 'the victim dot is unchanged');
    assert.equal(await readFile(join(await procure(b, 'victim'), 'file'), 'utf8'), 'victim data');
  });
});
