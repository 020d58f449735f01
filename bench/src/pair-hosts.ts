import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { CallParamsOf, TransferPollResult } from '@dotmesh/rpc';
import {
  type Cleanup,
  createHosts,
  freePorts,
  makeTempDir,
  routeCheck,
  runCommand,
  SERVER_BUNDLE,
  type ServerProcess,
  startServerProcess,
  type TestHost,
  type TrackedProcess,
  waitFor,
} from '@dotmesh/testkit';
import { deleteSubvolumes, sh } from './btrfs.ts';

/**
 * The two-host setup of P4 and P5: two test hosts (network namespaces joined by the test kit's
 * veths), a real dotmesh-server on each ("a" sends, "b" receives) listening on plain HTTP and on
 * HTTPS (b's certificate is pinned by fingerprint), a directory for raw subvolumes on each
 * server's pool (`rawRoot`, which the server never looks at), and the references' far ends in
 * b's namespace: the raw sink (raw-sink.ts: body → `btrfs receive`) over plain HTTP and over
 * HTTPS with b's own certificate (Node's TLS, as b's server) and, on demand, an rsync daemon. Timings run in pair-agent.ts inside the namespaces: the benchmark process lives
 * in the root namespace and never contacts a test address; every connection is preceded by a
 * `routeCheck`. `cleanup` stops every process and removes the hosts, pools and files.
 */
export interface PairSide {
  readonly host: TestHost;
  readonly server: ServerProcess;
  /** The server's pool mount point. */
  readonly mnt: string;
  /** Directory for raw subvolumes on the server's pool. */
  readonly rawRoot: string;
  readonly tlsPort: number;
  /** SHA-256 fingerprint of the server's certificate (the pin). */
  readonly fingerprint: string;
}

export interface BenchPair {
  readonly a: PairSide;
  readonly b: PairSide;
  /** The raw sink in b's namespace (HTTP, HTTPS), and the directory on b's pool it receives into. */
  readonly sinkUrl: string;
  readonly tlsSinkUrl: string;
  /** The CA b's certificate is issued by (curl verifies the TLS sink with it). */
  readonly caFile: string;
  readonly recvDir: string;
  readonly serverBin: string;
}

export const NS = 'admin';
const AGENT = join(import.meta.dirname, 'pair-agent.ts');
const SINK = join(import.meta.dirname, 'raw-sink.ts');

export async function startPair(cleanup: Cleanup, poolSize: string): Promise<BenchPair> {
  const [ha, hb] = (await createHosts({ cleanup, count: 2 })) as [TestHost, TestHost];
  const serverBin = existsSync(SERVER_BUNDLE) ? SERVER_BUNDLE : join(import.meta.dirname, '../../packages/server/src/bin.ts');
  const [tlsA, tlsB] = (await freePorts(2)) as [number, number];
  const [a, b] = await Promise.all([
    startSide(cleanup, ha, 'a', poolSize, tlsA, serverBin),
    startSide(cleanup, hb, 'b', poolSize, tlsB, serverBin),
  ]);
  for (const [from, to] of [
    [a, a],
    [a, b],
    [b, b],
  ] as const)
    await routeCheck(from.host, to.host.address);
  const recvDir = join(b.rawRoot, 'recv');
  await mkdir(recvDir, { recursive: true });
  const [port, tlsPort] = await portsFor(b, 2);
  const tlsDir = join(b.server.dir, 'server', 'tls');
  const sink = b.host.spawn(process.execPath, [SINK, b.host.address, String(port), recvDir], { cleanup });
  const tlsSink = b.host.spawn(
    process.execPath,
    [SINK, b.host.address, String(tlsPort), recvDir, join(tlsDir, 'server.pem'), join(tlsDir, 'server-key.pem')],
    { cleanup },
  );
  // both read from the start: a line printed before its reader is attached would be lost
  await Promise.all([firstLine(sink, 'listening', 10_000), firstLine(tlsSink, 'listening', 10_000)]);
  return {
    a,
    b,
    sinkUrl: `http://${b.host.address}:${port}/sink`,
    tlsSinkUrl: `https://${b.host.address}:${tlsPort}/sink`,
    caFile: join(tlsDir, 'ca.pem'),
    recvDir,
    serverBin,
  };
}

async function startSide(
  cleanup: Cleanup,
  host: TestHost,
  tag: string,
  poolSize: string,
  tlsPort: number,
  serverBin: string,
): Promise<PairSide> {
  const dir = await makeTempDir(`bench-pair-${tag}`, cleanup);
  const server = await startServerProcess({
    cleanup,
    dir,
    host,
    poolSize,
    serverBin,
    extraConfig: { tlsPort, tlsSubjectAltNames: [host.address] },
  });
  const mnt = JSON.parse(await readFile(server.configFile, 'utf8')).mountPoint ?? join(dir, 'mnt');
  const rawRoot = join(mnt, 'bench-raw');
  await mkdir(rawRoot, { recursive: true });
  const fingerprint = new X509Certificate(await readFile(join(dir, 'server', 'tls', 'server.pem'))).fingerprint256;
  return { host, server, mnt, rawRoot, tlsPort, fingerprint };
}

/** `count` ports for listeners in `side`'s namespace that none of its server's listeners uses. */
async function portsFor(side: PairSide, count: number): Promise<number[]> {
  const config = JSON.parse(await readFile(side.server.configFile, 'utf8')) as { port: number; checkPort: number };
  const taken = new Set([config.port, config.checkPort, side.tlsPort]);
  const ports = (await freePorts(count + 4)).filter((p) => !taken.has(p)).slice(0, count);
  if (ports.length < count) throw new Error('no free port for a listener in the peer namespace');
  return ports;
}

/** Reads a process's stdout as JSON lines. */
function jsonLines(stream: Readable): () => Promise<Record<string, unknown> | undefined> {
  const it = createInterface({ input: stream })[Symbol.asyncIterator]();
  return async () => {
    const r = await it.next();
    return r.done ? undefined : (JSON.parse(r.value) as Record<string, unknown>);
  };
}

/** Waits for a process's first stdout line, which must carry `key`. */
async function firstLine(p: TrackedProcess, key: string, timeoutMs: number): Promise<Record<string, unknown>> {
  const next = jsonLines(p.child.stdout!);
  const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), timeoutMs).unref());
  const line = await Promise.race([next(), p.exited.then(() => undefined), timeout]);
  if (!line || !(key in line))
    throw new Error(`expected a "${key}" line from pid ${p.pid}, got ${JSON.stringify(line)}:\n${p.output()}`);
  return line;
}

/** Runs pair-agent.ts in `host`'s namespace and returns its JSON lines. */
async function agent(host: TestHost, mode: string, payload: unknown, timeoutMs: number): Promise<Record<string, unknown>[]> {
  const { stdout } = await host.exec(process.execPath, [AGENT, mode, JSON.stringify(payload)], { timeoutMs });
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const conn = (s: PairSide) => ({ url: s.server.url, user: 'admin', apiKey: s.server.apiKey });

/** RX + TX bytes of the kit's veths in `host`'s namespace (`ip -s` counters). */
export async function vethBytes(host: TestHost): Promise<number> {
  const { stdout } = await runCommand('ip', ['-n', host.name, '-s', '-j', 'link', 'show']);
  const links = JSON.parse(stdout) as { ifname: string; stats64?: { rx: { bytes: number }; tx: { bytes: number } } }[];
  let sum = 0;
  for (const l of links) if (host.devices.includes(l.ifname) && l.stats64) sum += l.stats64.rx.bytes + l.stats64.tx.bytes;
  return sum;
}

/** A push of `dot` from a to b (same names), plain HTTP or HTTPS with b's certificate pinned. */
export function pushParams(p: BenchPair, dot: string, https: boolean): CallParamsOf<'Transfer'> {
  return {
    Peer: p.b.host.address,
    User: 'admin',
    Port: https ? p.b.tlsPort : p.b.server.port,
    ApiKey: p.b.server.apiKey,
    Direction: 'push',
    LocalNamespace: NS,
    LocalName: dot,
    LocalBranchName: '',
    RemoteNamespace: NS,
    RemoteName: dot,
    RemoteBranchName: '',
    TargetCommit: '',
    StashDivergence: false,
    PeerCertSha256: https ? p.b.fingerprint : '',
    PeerHttps: https,
  };
}

export interface TimedPush {
  /** From just before the Transfer RPC to b's `Commits` first listing `commit`. */
  readonly ms: number;
  /** The `Transfer` RPC alone (preflight: the peer's hello, both sides' states), request → reply. */
  readonly rpcMs: number;
  /** GetTransfer.Sent: the framed stream's bytes. */
  readonly sent: number;
  /** Bytes through a's veth, both ways (TCP/IP, TLS and HTTP included). */
  readonly veth: number;
  readonly final: TransferPollResult;
}

/**
 * Pushes `dot` from a to b and times it: a poller in b's namespace (pair-agent await-commit)
 * polls b's `Commits` every `pollMs` until `commit` is listed, while an agent in a's namespace
 * calls `Transfer` and waits for the transfer to end. Both calls go to the agent's own server
 * over loopback, so a's veth carries only the servers' traffic.
 */
export async function timedPush(
  cleanup: Cleanup,
  p: BenchPair,
  o: { dot: string; commit: string; https: boolean; pollMs: number; timeoutMs: number },
): Promise<TimedPush> {
  await routeCheck(p.b.host, p.b.host.address);
  await routeCheck(p.a.host, p.a.host.address);
  await routeCheck(p.a.host, p.b.host.address);
  const poller = p.b.host.spawn(
    process.execPath,
    [
      AGENT,
      'await-commit',
      JSON.stringify({
        ...conn(p.b),
        namespace: NS,
        name: o.dot,
        commit: o.commit,
        intervalMs: o.pollMs,
        timeoutMs: o.timeoutMs,
      }),
    ],
    { cleanup },
  );
  try {
    const next = jsonLines(poller.child.stdout!);
    const ready = await next();
    if (ready?.ready !== true) throw new Error(`the commit poller did not start: ${poller.output()}`);
    const v0 = await vethBytes(p.a.host);
    const lines = await agent(
      p.a.host,
      'transfer',
      { ...conn(p.a), params: pushParams(p, o.dot, o.https), pollMs: 50 },
      o.timeoutMs,
    );
    const start = lines.find((l) => 'start' in l);
    const final = lines.find((l) => 'final' in l)?.final as TransferPollResult | undefined;
    if (!start || !final) throw new Error(`the transfer agent printed ${JSON.stringify(lines)}`);
    if (final.Status !== 'finished') {
      throw new Error(
        `transfer ${final.TransferRequestId} ended ${final.Status}: ${final.Message}\n${(await p.a.server.log()).slice(-3000)}`,
      );
    }
    const seen = await next();
    await poller.exited;
    if (typeof seen?.seen !== 'string') throw new Error(`b never listed commit ${o.commit}: ${poller.output()}`);
    const v1 = await vethBytes(p.a.host);
    const t0 = BigInt(start.start as string);
    return {
      ms: Number(BigInt(seen.seen) - t0) / 1e6,
      rpcMs: Number(BigInt(start.returned as string) - t0) / 1e6,
      sent: final.Sent,
      veth: v1 - v0,
      final,
    };
  } finally {
    await poller.stop();
  }
}

export interface TimedRun {
  readonly ms: number;
  readonly stdout: string;
  /** Bytes through a's veth, both ways. */
  readonly veth: number;
}

/** Runs `argv` in a's namespace (pair-agent run: spawn → exit), counting a's veth bytes. */
export async function timedRunInA(p: BenchPair, argv: readonly string[], timeoutMs: number): Promise<TimedRun> {
  await routeCheck(p.a.host, p.b.host.address);
  const v0 = await vethBytes(p.a.host);
  const [r] = await agent(p.a.host, 'run', { argv, timeoutMs }, timeoutMs + 10_000);
  const v1 = await vethBytes(p.a.host);
  if (r?.code !== 0) throw new Error(`${argv.join(' ')} exited ${r?.code}: ${String(r?.stderr ?? '').trim()}`);
  return { ms: r.ms as number, stdout: String(r.stdout), veth: v1 - v0 };
}

export interface RawSend extends TimedRun {
  /** Body bytes the sink counted (the send stream). */
  readonly bytes: number;
  /** Through TLS: the cipher and protocol the sink saw. */
  readonly cipher: string | null;
  readonly protocol: string | null;
}

/** A TLS cipher suite as Node reports it (getCipher) and the protocol version. */
export interface TlsChoice {
  /** OpenSSL's name (what curl takes). */
  readonly name: string;
  /** The IANA name. */
  readonly standardName: string;
  readonly protocol: string;
}

/**
 * The raw reference: `btrfs send [-p parent] snapshot | curl -T- <sink>` from a's namespace;
 * the sink in b's namespace pipes it into `btrfs receive` and answers when receive exited 0.
 * With `tls`, curl talks HTTPS to the TLS sink with exactly that protocol and cipher (and checks
 * b's certificate against its CA); the sink reports what was used, which must be it.
 */
export async function rawSend(
  p: BenchPair,
  o: { snapshot: string; parent?: string; timeoutMs: number; tls?: TlsChoice },
): Promise<RawSend> {
  const curlTls = o.tls
    ? o.tls.protocol === 'TLSv1.3'
      ? ['--cacert', p.caFile, '--tlsv1.3', '--tls-max', '1.3', '--tls13-ciphers', o.tls.name]
      : ['--cacert', p.caFile, '--tlsv1.2', '--tls-max', '1.2', '--ciphers', o.tls.name]
    : [];
  const url = o.tls ? p.tlsSinkUrl : p.sinkUrl;
  const script = `btrfs send -q "$@" | curl -sS --fail-with-body ${[...curlTls, '-T-', url].map(shellQuote).join(' ')}`;
  const args = [...(o.parent ? ['-p', o.parent] : []), o.snapshot];
  const r = await timedRunInA(p, ['bash', '-o', 'pipefail', '-c', script, 'bash', ...args], o.timeoutMs);
  let answer: { bytes?: unknown; cipher?: string | null; protocol?: string | null };
  try {
    answer = JSON.parse(r.stdout.trim());
  } catch {
    throw new Error(`the raw sink answered ${JSON.stringify(r.stdout)}`);
  }
  const bytes = Number(answer.bytes);
  if (!Number.isFinite(bytes)) throw new Error(`the raw sink answered ${JSON.stringify(r.stdout)}`);
  if (o.tls && (answer.cipher !== o.tls.standardName || answer.protocol !== o.tls.protocol)) {
    throw new Error(`the TLS reference used ${answer.protocol} ${answer.cipher}, not ${o.tls.protocol} ${o.tls.standardName}`);
  }
  return { ...r, bytes, cipher: answer.cipher ?? null, protocol: answer.protocol ?? null };
}

/** `s` as one shell word. */
const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The protocol and cipher a dotmesh server on a negotiates with b's HTTPS port: a Node TLS
 * client with the defaults of the server's own transfers (pair-agent tls-cipher, in a's namespace).
 */
export async function dmTlsChoice(p: BenchPair): Promise<TlsChoice> {
  await routeCheck(p.a.host, p.b.host.address);
  const [r] = await agent(p.a.host, 'tls-cipher', { host: p.b.host.address, port: p.b.tlsPort }, 30_000);
  if (typeof r?.name !== 'string' || typeof r.standardName !== 'string' || typeof r.protocol !== 'string') {
    throw new Error(`tls-cipher printed ${JSON.stringify(r)}`);
  }
  return { name: r.name, standardName: r.standardName, protocol: r.protocol };
}

/** Deletes every subvolume the raw sink received whose name starts with `prefix`. */
export async function dropReceived(p: BenchPair, prefix: string): Promise<void> {
  const names = (await readdir(p.recvDir)).filter((n) => n.startsWith(prefix));
  await deleteSubvolumes(names.map((n) => join(p.recvDir, n)));
}

/**
 * Flushes a pool and waits until btrfs has cleaned every deleted subvolume (between samples, so
 * neither writeback nor the cleaner of one sample runs into the next). `btrfs filesystem sync`
 * also wakes the cleaner, which otherwise waits for the next periodic commit (up to 30 s).
 */
export async function settle(side: PairSide): Promise<void> {
  await sh('btrfs', ['filesystem', 'sync', side.mnt]);
  await sh('btrfs', ['subvolume', 'sync', side.mnt]);
}

export interface RsyncDaemon {
  /** `rsync://<b>:<port>/bench`, the module. */
  readonly url: string;
  /** The module's directory on b's pool. */
  readonly dir: string;
}

/**
 * `rsync --daemon --no-detach` in b's namespace on a private port, writing into a directory on
 * b's pool; stopped by `cleanup`. Fails (never skips) when rsync is not installed.
 */
export async function startRsyncDaemon(cleanup: Cleanup, p: BenchPair): Promise<RsyncDaemon> {
  await sh('sh', ['-c', 'command -v rsync']).catch(() => {
    throw new Error('rsync is not installed (apt-get install rsync): P5 needs it for its reference');
  });
  const dir = join(p.b.rawRoot, 'rsync');
  await mkdir(dir, { recursive: true });
  const confDir = await makeTempDir('bench-rsyncd', cleanup);
  const conf = join(confDir, 'rsyncd.conf');
  await writeFile(
    conf,
    [
      `pid file = ${join(confDir, 'rsyncd.pid')}`,
      `log file = ${join(confDir, 'rsyncd.log')}`,
      'use chroot = no',
      '[bench]',
      `  path = ${dir}`,
      '  read only = false',
      '  uid = root',
      '  gid = root',
      '',
    ].join('\n'),
  );
  const [port] = await portsFor(p.b, 1);
  const addr = p.b.host.address;
  const daemon = p.b.host.spawn('rsync', ['--daemon', '--no-detach', `--config=${conf}`, `--port=${port}`, `--address=${addr}`], {
    cleanup,
  });
  await routeCheck(p.b.host, addr);
  await waitFor(
    async () => {
      if (daemon.child.exitCode !== null) throw new Error(`rsync daemon exited: ${daemon.output()}`);
      await p.b.host.exec('rsync', [`rsync://${addr}:${port}/`], { timeoutMs: 5000 });
      return true;
    },
    { timeoutMs: 10_000, intervalMs: 100, what: 'the rsync daemon' },
  );
  return { url: `rsync://${addr}:${port}/bench`, dir };
}
