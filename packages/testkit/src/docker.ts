import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.ts';
import { unmountUnder } from './loop.ts';
import { deleteNetns, netnsName } from './netns.ts';
import { type CommandResult, runCommand, spawnTracked, waitFor } from './process.ts';
import { makeTempDir } from './tmp.ts';

/** Debian's docker.io: the engine and its CLI (a docker CLI elsewhere on PATH may be another one). */
export const DOCKERD = '/usr/sbin/dockerd';
export const DOCKER_CLI = '/usr/bin/docker';
/** busybox-static: a 2 MB root filesystem for a base image (no registry here). */
export const BUSYBOX = '/bin/busybox';

/**
 * A real Docker engine for tests: Debian's `dockerd` in a network namespace of its own (entered
 * with `nsenter --net`; `ip netns exec` remounts /sys and dockerd then fails), so its bridge and
 * iptables rules stay off the host, with its own data root, exec root and API socket in a test
 * directory. The cleanup stops dockerd and its containers, unmounts what it mounted and removes
 * the namespace and the directory.
 */
export interface DockerEngine {
  /** The Engine API's unix socket. */
  readonly socket: string;
  readonly netnsName: string;
  /** Runs Debian's docker CLI against this engine; rejects on a non-zero exit. */
  docker(args: readonly string[], opts?: { timeoutMs?: number; input?: Buffer }): Promise<CommandResult>;
  /** Stops dockerd gracefully (its containers stop with it) and starts it again on the same roots. */
  restart(): Promise<void>;
  /** Makes a busybox image from busybox-static (`docker import`); returns its name. */
  importBusybox(name?: string): Promise<string>;
}

export async function startDockerd(o: { readonly cleanup: Cleanup }): Promise<DockerEngine> {
  const dir = await makeTempDir('docker', o.cleanup);
  const ns = netnsName(`d${process.pid % 100000}${Math.floor(Math.random() * 1000)}`);
  await runCommand('ip', ['netns', 'add', ns]);
  o.cleanup.add(async () => {
    await deleteNetns(ns);
    await unmountUnder(`${dir}/`);
  }, `remove netns ${ns}`);
  await runCommand('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  const socket = join(dir, 'docker.sock');
  const argv = [
    `--net=/run/netns/${ns}`,
    '--',
    DOCKERD,
    '--data-root',
    join(dir, 'data'),
    '--exec-root',
    join(dir, 'exec'),
    '--pidfile',
    join(dir, 'dockerd.pid'),
    '-H',
    `unix://${socket}`,
  ];
  const docker: DockerEngine['docker'] = (args, opts = {}) => dockerCli(socket, args, opts);
  const launch = async () => {
    const proc = spawnTracked('nsenter', argv, { cleanup: o.cleanup, graceMs: 10_000 });
    try {
      await waitFor(
        () =>
          existsSync(socket) &&
          docker(['version']).then(
            () => true,
            () => false,
          ),
        { timeoutMs: 60_000 },
      );
    } catch (e) {
      throw new Error(`dockerd did not answer within 60 s:\n${proc.output().slice(-4000)}`, { cause: e });
    }
    return proc;
  };
  let proc = await launch();
  return {
    socket,
    netnsName: ns,
    docker,
    async restart() {
      // SIGTERM to dockerd alone (nsenter exec'd it): it stops its containers and exits, as a
      // service restart does; killing its process tree would kill the containers instead.
      process.kill(proc.pid, 'SIGTERM');
      await proc.exited;
      proc = await launch();
    },
    async importBusybox(name = 'busybox') {
      const rootfs = join(dir, `rootfs-${name}`);
      await mkdir(join(rootfs, 'bin'), { recursive: true });
      await cp(BUSYBOX, join(rootfs, 'bin', 'busybox'));
      for (const cmd of [
        'sh',
        'echo',
        'cat',
        'ls',
        'sleep',
        'touch',
        'mkdir',
        'rm',
        'sync',
        'grep',
        'wc',
        'head',
        'dd',
        'true',
        'cp',
      ]) {
        await symlink('busybox', join(rootfs, 'bin', cmd));
      }
      await mkdir(join(rootfs, 'tmp'));
      const tar = await new Promise<Buffer>((resolve, reject) =>
        execFile('tar', ['-C', rootfs, '-c', '.'], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (err, out) =>
          err ? reject(err) : resolve(out),
        ),
      );
      await docker(['import', '-', name], { input: tar });
      return name;
    },
  };
}

function dockerCli(
  socket: string,
  args: readonly string[],
  opts: { timeoutMs?: number; input?: Buffer },
): Promise<CommandResult> {
  if (!opts.input) return runCommand(DOCKER_CLI, ['-H', `unix://${socket}`, ...args], { timeoutMs: opts.timeoutMs ?? 120_000 });
  return new Promise((resolve, reject) => {
    const child = execFile(
      DOCKER_CLI,
      ['-H', `unix://${socket}`, ...args],
      { encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`docker ${args.join(' ')} failed: ${stderr.trim() || err.message}`)) : resolve({ stdout, stderr }),
    );
    child.stdin?.end(opts.input);
  });
}
