/**
 * The timing end of P4 and P5, run inside a test host's network namespace
 * (`host.exec` / `host.spawn` of `node pair-agent.ts <mode> <json>`), because the benchmark process
 * lives in the root namespace and must never contact a test address. Times are readings of
 * `process.hrtime.bigint()` (CLOCK_MONOTONIC, the same clock in every process on the machine),
 * printed as decimal nanoseconds, so the benchmark subtracts a reading of one agent from another's.
 * Each mode prints JSON lines on stdout.
 *
 *   transfer {url,user,apiKey,params,pollMs}     calls `Transfer`, prints {"start","returned","id"}
 *                                                 (readings before and after the call), then polls `GetTransfer`
 *                                                 until it ends and prints {"final": record}
 *   await-commit {url,user,apiKey,namespace,name,commit,intervalMs,timeoutMs}
 *                                                 polls `Commits` (errors, e.g. no such dot yet,
 *                                                 count as "not yet"): prints {"ready":true} after
 *                                                 the first poll, then {"seen"} (the reading when
 *                                                 the commit was listed) and exits; exit 1 on timeout
 *   run {argv,timeoutMs}                         runs argv to completion and prints
 *                                                 {"ms","code","stdout","stderr"} (ms: spawn → exit)
 *   tls-cipher {host,port}                       connects with Node's TLS defaults (what a
 *                                                 server's transfers use), prints {"name",
 *                                                 "standardName","protocol"} and disconnects
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'node:tls';
import { type CallParamsOf, DotmeshClient } from '@dotmesh/rpc';

const [mode, json] = process.argv.slice(2);
const print = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
const now = () => process.hrtime.bigint();

interface Conn {
  readonly url: string;
  readonly user: string;
  readonly apiKey: string;
}
const client = (c: Conn) => new DotmeshClient({ url: c.url, user: c.user, apiKey: c.apiKey, timeoutMs: 600_000 });

async function transfer(o: Conn & { params: CallParamsOf<'Transfer'>; pollMs: number }): Promise<void> {
  const rpc = client(o);
  const start = now();
  const id = await rpc.call('Transfer', o.params);
  print({ start: String(start), returned: String(now()), id });
  for (;;) {
    const r = await rpc.call('GetTransfer', id);
    if (r.Status === 'finished' || r.Status === 'error') {
      print({ final: r, at: String(now()) });
      return;
    }
    await sleep(o.pollMs);
  }
}

async function awaitCommit(
  o: Conn & { namespace: string; name: string; commit: string; intervalMs: number; timeoutMs: number },
): Promise<void> {
  const rpc = client(o);
  const listed = async () => {
    try {
      const commits = await rpc.call('Commits', { Namespace: o.namespace, Name: o.name, Branch: '' });
      return commits.some((c) => c.Id === o.commit);
    } catch {
      return false;
    }
  };
  if (await listed()) throw new Error(`commit ${o.commit} is already listed before the transfer`);
  print({ ready: true });
  const deadline = Date.now() + o.timeoutMs;
  while (Date.now() < deadline) {
    if (await listed()) {
      print({ seen: String(now()) });
      return;
    }
    await sleep(o.intervalMs);
  }
  console.error(`commit ${o.commit} of ${o.namespace}/${o.name} not listed within ${o.timeoutMs} ms`);
  process.exitCode = 1;
}

function run(o: { argv: string[]; timeoutMs: number }): Promise<void> {
  return new Promise((resolve) => {
    const start = now();
    const child = spawn(o.argv[0]!, o.argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], timeout: o.timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout = (stdout + c.toString('utf8')).slice(-16_000);
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString('utf8')).slice(-16_000);
    });
    child.once('error', (e) => {
      print({ ms: Number(now() - start) / 1e6, code: null, stdout, stderr: `${stderr}${e.message}` });
      resolve();
    });
    child.once('close', (code) => {
      print({ ms: Number(now() - start) / 1e6, code, stdout, stderr });
      resolve();
    });
  });
}

function tlsCipher(o: { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    // No cipher or version options: the defaults of rpc/tls verifiedConnection (server transfers).
    const socket = connect({ host: o.host, port: o.port, rejectUnauthorized: false }, () => {
      const c = socket.getCipher();
      print({ name: c.name, standardName: c.standardName, protocol: socket.getProtocol() });
      socket.end();
      resolve();
    });
    socket.once('error', reject);
  });
}

const o = JSON.parse(json ?? '{}');
if (mode === 'transfer') await transfer(o);
else if (mode === 'await-commit') await awaitCommit(o);
else if (mode === 'run') await run(o);
else if (mode === 'tls-cipher') await tlsCipher(o);
else {
  console.error(`pair-agent: unknown mode ${mode} (transfer | await-commit | run | tls-cipher)`);
  process.exitCode = 2;
}
