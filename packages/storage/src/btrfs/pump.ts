import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Duplex, PassThrough, Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import { STREAM_KEY_BYTES, type StreamTls } from '../driver.ts';
import { type Exec, ExecError } from '../exec.ts';
import type { SendStreamCheck } from './send-stream-check.ts';

/**
 * The btrfs driver's side of `dotmesh-pump` (native/dotmesh-pump.c): the process that frames
 * `btrfs send` and unframes into `btrfs receive`, so the bytes of a commit move between the
 * btrfs tools and a connection without passing through Node. Node keeps the decisions: it
 * starts the pump, serves its checker channel (SendStreamCheck over the stream's metadata,
 * answering before any command that is not plain data reaches `btrfs receive`) and maps its
 * exit to a DotmeshError.
 */
export interface PumpConfig {
  /** Path of the dotmesh-pump executable. */
  readonly binary: string;
  /** Size of the pipes between the pump and btrfs (F_SETPIPE_SZ; capped by the kernel). */
  readonly pipeBytes?: number;
  /** Receive: syncfs the pool in the background after every so many bytes (0: never). */
  readonly syncEveryBytes?: number;
}

export const DEFAULT_PIPE_BYTES = 1024 * 1024;
export const DEFAULT_SYNC_EVERY_BYTES = 256 * 1024 * 1024;
const DEFAULT_IDLE_MS = 30_000;

/** Exit codes of dotmesh-pump (its header comment). */
const EXIT = { corrupt: 10, io: 11, refused: 12, command: 13, tls: 14 } as const;

/** Where a pump reads a framed stream from: a Node stream (piped into its stdin) or a socket it reads itself. */
export type PumpInput =
  | { readonly stream: Readable }
  | {
      readonly socket: Socket;
      /** Called once the pump owns the socket (Node no longer reads it): the peer may send now. */
      readonly onReady: () => void;
    };

function common(config: PumpConfig, idleMs: number | undefined): string[] {
  return ['--idle-ms', String(idleMs ?? DEFAULT_IDLE_MS), '--pipe-bytes', String(config.pipeBytes ?? DEFAULT_PIPE_BYTES)];
}

/**
 * The pump's options for TLS on its connection, and what it reads on extra fds from `firstFd`
 * on (the stream key, then the peeked bytes): secrets never go on a command line.
 */
function tlsOptions(tls: StreamTls | undefined, firstFd: number): { args: string[]; inputs: Buffer[] } {
  if (!tls) return { args: [], inputs: [] };
  if (tls.streamKey.length !== STREAM_KEY_BYTES) {
    throw new DotmeshError('INVALID_ARGUMENT', `a stream key has ${STREAM_KEY_BYTES} bytes, not ${tls.streamKey.length}`);
  }
  const args = ['--tls', tls.role, '--tls-alpn', tls.alpn, '--stream-key-fd', String(firstFd)];
  const inputs = [tls.streamKey];
  if (tls.handshakeTimeoutMs !== undefined) args.push('--handshake-ms', String(tls.handshakeTimeoutMs));
  if (tls.role === 'client') {
    args.push('--tls-name', tls.serverName);
    if ('certSha256' in tls.trust) args.push('--tls-pin', tls.trust.certSha256);
    else if ('caPin' in tls.trust) args.push('--tls-ca-pin', tls.trust.caPin);
    else if (tls.trust.caFile !== undefined) args.push('--tls-ca', tls.trust.caFile);
    if (tls.identity) args.push('--tls-cert', tls.identity.certFile, '--tls-key', tls.identity.keyFile);
  } else {
    args.push('--tls-cert', tls.identity.certFile, '--tls-key', tls.identity.keyFile);
    if (tls.clientCaFile !== undefined) args.push('--tls-ca', tls.clientCaFile);
    args.push('--tls-prefix-fd', String(firstFd + 1));
    inputs.push(tls.peeked ?? Buffer.alloc(0));
  }
  return { args, inputs };
}

/** Writes each of `inputs` whole into the child's fd `firstFd + i`, then closes it. */
function feedInputs(child: ChildProcess, firstFd: number, inputs: readonly Buffer[]): void {
  inputs.forEach((data, i) => {
    const fd = child.stdio[firstFd + i] as Writable;
    fd.on('error', () => {}); // the pump died first: its exit code says why
    fd.end(data);
  });
}

/** Collects a child's stderr (bounded) and settles with its exit code once it closed. */
function exited(child: ChildProcess): { code: Promise<number | null>; stderr: () => string } {
  let text = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (text.length < 64 * 1024) text += d.toString();
  });
  const code = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  });
  return { code, stderr: () => text };
}

/** The DotmeshError for a pump that exited `code`; `what` names the stream. */
export function pumpError(code: number | null, stderr: string, what: string, command: readonly string[]): DotmeshError {
  // The command's stderr passes through, and it may still write after the pump's own last line
  // (the pump kills it only after printing): the reason is the pump's last line, wherever it is.
  const all = stderr.trim().split('\n');
  const own = all.findLastIndex((l) => l.startsWith('dotmesh-pump: '));
  const lines = own < 0 ? all : [...all.slice(0, own), ...all.slice(own + 1), all[own] ?? ''];
  const last = (lines.at(-1) ?? '').replace(/^dotmesh-pump: /, '');
  switch (code) {
    case EXIT.corrupt:
      return new DotmeshError('TRANSFER_CORRUPT', `${what}: ${last}`, { hint: 'run the transfer again' });
    case EXIT.io:
      return new DotmeshError('UNAVAILABLE', `${what}: ${last}`, { hint: 'run the transfer again' });
    case EXIT.refused:
      return new DotmeshError('INVALID_ARGUMENT', `${what} refused: ${last}`);
    case EXIT.tls:
      return new DotmeshError('PERMISSION_DENIED', `${what}: ${last}`, {
        hint: 'check that the address is the peer the transfer was set up with; otherwise someone may be intercepting the connection',
      });
    case EXIT.command:
      return new ExecError(command[0] ?? 'btrfs', command.slice(1), null, lines.slice(0, -1).join('\n') || last, 'failed');
    default:
      return new ExecError('dotmesh-pump', [], code, stderr);
  }
}

/** Follows the pump's progress lines (framed bytes so far) on `channel`. */
function followProgress(channel: Readable, onProgress: ((bytes: number) => void) | undefined): void {
  let partial = '';
  channel.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    const last = lines.at(-1);
    if (last !== undefined && /^\d+$/.test(last)) onProgress?.(Number(last));
  });
}

/**
 * `btrfs <sendArgs>` framed (frames.ts) into `out`, which ends only after the end frame — which
 * the pump writes only once `btrfs send` exited 0 — and is destroyed with the failure otherwise.
 * Destroying `out` kills the pump (and so btrfs send).
 */
export function pumpSendStream(o: { exec: Exec; config: PumpConfig; sendArgs: readonly string[]; out: PassThrough }): void {
  const command = ['btrfs', ...o.sendArgs];
  const child = o.exec.spawn(o.config.binary, ['send', ...common(o.config, undefined), '--', ...command], { stdin: 'ignore' });
  const done = exited(child);
  const out = o.out;
  out.once('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  child.stdout?.pipe(out, { end: false });
  done.code.then(
    async (code) => {
      // every byte the pump wrote is in `out` before it ends
      if (child.stdout) await finished(child.stdout).catch(() => undefined);
      if (code === 0) out.end();
      else out.destroy(pumpError(code, done.stderr(), 'btrfs send', command));
    },
    (e: Error) => out.destroy(e),
  );
}

/**
 * The same framed stream written by the pump straight into `socket` (a connected TCP socket,
 * not TLS), which stays open and Node's (Node may go on reading it). Resolves once the end
 * frame is out; `onProgress` gets the framed bytes written so far. Idle longer than `idleMs`
 * (the peer reads nothing): UNAVAILABLE.
 */
export async function pumpSendInto(o: {
  exec: Exec;
  config: PumpConfig;
  sendArgs: readonly string[];
  socket: Socket;
  idleMs?: number;
  onProgress?: (bytes: number) => void;
  /** TLS the pump speaks on the socket (then Node never reads it). */
  tls?: StreamTls;
}): Promise<void> {
  const command = ['btrfs', ...o.sendArgs];
  const tls = tlsOptions(o.tls, 5);
  const args = ['send', ...common(o.config, o.idleMs), '--out-fd', '4', '--progress-fd', '3', ...tls.args, '--', ...command];
  const flowing = o.socket.readableFlowing;
  const child = o.exec.spawn(o.config.binary, args, {
    stdin: 'ignore',
    stdout: 'ignore',
    extraFds: ['pipe', o.socket, ...tls.inputs.map(() => 'pipe' as const)],
  });
  // Node stops reading a socket it hands to a child: its owner may be reading it (an answer).
  // Never a TLS one: its bytes are the pump's TLS session.
  if (flowing === true && !o.tls) o.socket.resume();
  feedInputs(child, 5, tls.inputs);
  const done = exited(child);
  const progress = child.stdio[3] as Readable;
  followProgress(progress, o.onProgress);
  const gone = () => child.kill('SIGKILL');
  o.socket.once('close', gone);
  try {
    const code = await done.code;
    await finished(progress).catch(() => undefined);
    if (code !== 0) throw pumpError(code, done.stderr(), 'btrfs send', command);
  } finally {
    o.socket.off('close', gone);
  }
}

/**
 * A framed stream from `input` into `btrfs <receiveArgs>`, with `check` (built with
 * elidedPayloads) as the pump's checker; the pump reads up to the end frame and nothing after
 * it. Settles once the pump exited and the check saw the whole stream. Errors by priority: the
 * check's (as is), the input stream's (UNAVAILABLE unless already a DotmeshError), then the
 * pump's exit (TRANSFER_CORRUPT, UNAVAILABLE, INVALID_ARGUMENT, or an ExecError of btrfs
 * receive). Any of them kills the pump at once, and with it btrfs receive.
 */
export async function pumpReceive(o: {
  exec: Exec;
  config: PumpConfig;
  receiveArgs: readonly string[];
  input: PumpInput;
  check: SendStreamCheck;
  what: string;
  syncDir?: string;
  idleMs?: number;
  onProgress?: (bytes: number) => void;
  /** TLS the pump speaks on the socket input. */
  tls?: StreamTls;
}): Promise<void> {
  const socket = 'socket' in o.input ? o.input.socket : undefined;
  if (o.tls && !socket) throw new Error('pumpReceive: TLS needs a socket input');
  const command = ['btrfs', ...o.receiveArgs];
  const sync = o.config.syncEveryBytes ?? DEFAULT_SYNC_EVERY_BYTES;
  const tls = tlsOptions(o.tls, 6);
  const args = [
    'receive',
    ...common(o.config, o.idleMs),
    '--check-fd',
    '3',
    '--progress-fd',
    '4',
    ...(o.syncDir && sync > 0 ? ['--sync-dir', o.syncDir, '--sync-every', String(sync)] : []),
    ...(socket ? ['--in-fd', '5'] : []),
    ...tls.args,
    '--',
    ...command,
  ];
  // The pump reads the socket from now on and measures its idleness itself.
  socket?.setTimeout(0);
  // What Node already read of the socket (and holds unread) is the start of the client's
  // handshake: it goes to the pump after the peeked bytes. Taken in the same tick as the spawn,
  // which stops Node's reading, so no byte is read in between.
  const early = o.tls?.role === 'server' && socket && socket.readableLength > 0 ? (socket.read() as Buffer | null) : null;
  const child = o.exec.spawn(o.config.binary, args, {
    stdin: socket ? 'ignore' : 'pipe',
    stdout: 'ignore',
    extraFds: socket ? ['pipe', 'pipe', socket, ...tls.inputs.map(() => 'pipe' as const)] : ['pipe', 'pipe'],
  });
  if (early) tls.inputs[1] = Buffer.concat([tls.inputs[1] ?? Buffer.alloc(0), early]);
  feedInputs(child, 6, tls.inputs);
  const done = exited(child);
  followProgress(child.stdio[4] as Readable, o.onProgress);
  let checkError: Error | undefined;
  let sourceError: Error | undefined;
  const checking = serveChecker(child.stdio[3] as Duplex, o.check).catch((e: Error) => {
    checkError = isDotmeshError(e) ? new DotmeshError(e.code, `${o.what} refused: ${e.message}`, { cause: e }) : e;
    child.kill('SIGKILL');
  });
  const stream = 'stream' in o.input ? o.input.stream : undefined;
  if (stream) {
    const stdin = child.stdin!;
    stdin.on('error', () => {}); // EPIPE once the pump stopped reading: its exit code says why
    // A failed source ends the pump's input: short of its end frame, the pump fails, and the
    // source's error says why. finished() also reports a source that failed before we got here.
    finished(stream, { writable: false }).catch((e: Error) => {
      sourceError ??= isDotmeshError(e)
        ? e
        : new DotmeshError('UNAVAILABLE', `${o.what} failed: ${e.message}`, { cause: e, hint: 'run the transfer again' });
      stdin.end();
    });
    stream.pipe(stdin);
  } else if ('onReady' in o.input) o.input.onReady();
  try {
    const code = await done.code;
    await checking;
    if (checkError) throw checkError;
    if (code !== 0 && sourceError) throw sourceError;
    if (code !== 0) throw pumpError(code, done.stderr(), o.what, command);
  } finally {
    if (stream) stream.unpipe(child.stdin!);
  }
}

/** Checker records from the pump: type byte, u32le length, data. */
const RECORD = { metadata: 0x4d, question: 0x51, end: 0x5a } as const;

/**
 * Serves the pump's checker channel: metadata goes into `check`; a question is answered 'y'
 * once the check accepted everything before it; the end ends the check and is answered once
 * the check accepted the whole stream. Rejects with the check's error (the caller kills the
 * pump, which then never passes the refused command on).
 */
async function serveChecker(channel: Duplex, check: SendStreamCheck): Promise<void> {
  check.resume(); // its output (the metadata again) is not needed
  check.on('error', () => {}); // reported through write() and finished() below
  const feed = (data: Buffer) =>
    new Promise<void>((resolve, reject) => {
      check.write(data, (e) => (e ? reject(e) : resolve()));
    });
  let buf: Buffer = Buffer.alloc(0);
  for await (const chunk of channel as AsyncIterable<Buffer>) {
    buf = buf.length > 0 ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 5) {
      const type = buf[0];
      const len = buf.readUInt32LE(1);
      if (buf.length < 5 + len) break;
      const data = buf.subarray(5, 5 + len);
      buf = buf.subarray(5 + len);
      if (type === RECORD.metadata) await feed(data);
      else if (type === RECORD.question) channel.write('y');
      else if (type === RECORD.end) {
        check.end();
        await finished(check);
        channel.write('y');
      } else throw new Error(`dotmesh-pump sent an unknown checker record ${type}`);
    }
  }
}

/** The version dotmesh-pump prints for `--version` (its PUMP_VERSION): this code speaks to it. */
export const PUMP_VERSION = 'dotmesh-pump 1';

/**
 * Checks that `config.binary` is a dotmesh-pump this code can use (runs `--version`); throws
 * UNAVAILABLE saying what to do otherwise. The server calls it at start: without the pump the
 * btrfs driver cannot move commits.
 */
export async function checkPump(exec: Exec, config: PumpConfig): Promise<void> {
  let out: string;
  try {
    out = (await exec.run(config.binary, ['--version'], { timeoutMs: 10_000 })).stdout.trim();
  } catch (e) {
    throw new DotmeshError('UNAVAILABLE', `cannot run dotmesh-pump at ${config.binary}: ${(e as Error).message}`, {
      hint: 'build it with `npm run build` (needs gcc, libc6-dev and libisal-dev; libisal2 at run time) or reinstall with scripts/install; see docs/install.md',
      cause: e,
    });
  }
  if (out !== PUMP_VERSION) {
    throw new DotmeshError('UNAVAILABLE', `${config.binary} is ${JSON.stringify(out.slice(0, 100))}, not ${PUMP_VERSION}`, {
      hint: 'rebuild it with `npm run build` or reinstall with scripts/install',
    });
  }
}
