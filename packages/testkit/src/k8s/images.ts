import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { debootstrapRootfs, ensureCachedFile, imageCacheDir } from '../cached-build.ts';
import { BUSYBOX } from '../docker.ts';
import { runCommand } from '../process.ts';
import { type ImageConfig, sha256File, type UnpackedArchive, writeImageArchive } from './image-tar.ts';
import type { K8sTools } from './tools.ts';

/**
 * The test cluster's images, built locally from what the repository and the machine have (no
 * registry) and cached outside the clone as archives named by a hash of their inputs:
 * - pause: the tools' static `pause` program, the sandbox image every node's containerd is
 *   configured with (under exactly this name);
 * - busybox: busybox-static with every applet linked, a small workload image (its `wget -T`
 *   segfaults and its TLS fails against the API server: use server-base's curl for that);
 * - server-base: a Debian bookworm rootfs (debootstrap) with btrfs-progs, util-linux, mount,
 *   curl, libisal2 and the Node.js that runs the tests at /usr/local/bin/node: what the dotmesh
 *   server image builds on;
 * - server, operator, provisioner (product-images.ts): server-base's layer plus one of the built
 *   bundles of `npm run build`;
 * - etcd (product-images.ts): the tools' etcd 3.6.5, alone.
 * Image names are `dotmesh.test/<name>:<key>`: a registry host no one can pull from, so a pod
 * must use `imagePullPolicy: Never` (or IfNotPresent) and finds the imported image or nothing.
 */
export interface TestImage {
  /** The image reference pods use. */
  readonly ref: string;
  /** The docker-save style archive to import. */
  readonly archive: string;
}

/** Bump when a recipe below changes what it produces for the same inputs. */
const RECIPE_VERSION = 1;
const BUILD_TIMEOUT_MS = 10 * 60_000;

export interface ImageOptions {
  /** Default `$DOTMESH_TEST_IMAGE_CACHE`, else /var/cache/dotmesh-test/images. */
  readonly cacheDir?: string;
  readonly log?: (s: string) => void;
}

export function keyOf(...parts: string[]): string {
  return createHash('sha256')
    .update([`v${RECIPE_VERSION}`, ...parts].join('\0'))
    .digest('hex')
    .slice(0, 12);
}

/**
 * An image made of `base`'s layers plus one layer of `paths` of the rootfs (which `fill` gave
 * `base`'s files too, for the checks run in it). `base` is found in the build's work folder.
 */
export interface LayeredOn {
  readonly base: (work: string) => UnpackedArchive;
  readonly paths: readonly string[];
}

export async function cachedImage(
  name: string,
  key: string,
  o: ImageOptions,
  config: ImageConfig,
  fill: (rootfs: string, work: string) => Promise<void>,
  layered?: LayeredOn,
): Promise<TestImage> {
  const ref = `dotmesh.test/${name}:${key}`;
  const archive = await ensureCachedFile({
    target: join(imageCacheDir(o.cacheDir), `k8s-${name}-${key}.tar`),
    timeoutMs: BUILD_TIMEOUT_MS,
    ...(o.log ? { log: o.log } : {}),
    // The same image for earlier inputs (a server image of an earlier build of dist/).
    supersedes: (file) => file.startsWith(`k8s-${name}-`) && /^[0-9a-f]{12}\.tar$/.test(file.slice(`k8s-${name}-`.length)),
    build: async (work) => {
      const rootfs = join(work, 'rootfs');
      await mkdir(rootfs, { recursive: true });
      await fill(rootfs, work);
      const out = join(work, 'image.tar');
      await writeImageArchive({
        rootfs,
        ref,
        config,
        work,
        out,
        ...(layered ? { base: layered.base(work), paths: layered.paths } : {}),
      });
      return out;
    },
  });
  return { ref, archive };
}

export async function pauseImage(tools: K8sTools, o: ImageOptions = {}): Promise<TestImage> {
  const bin = tools.bin('pause');
  return cachedImage('pause', keyOf(await sha256File(bin)), o, { Entrypoint: ['/pause'] }, async (rootfs) => {
    await copyFile(bin, join(rootfs, 'pause'));
    await chmod(join(rootfs, 'pause'), 0o755);
  });
}

/** The standard directories a container's rootfs needs (runc mounts proc, sys, dev over them). */
export async function baseDirs(rootfs: string): Promise<void> {
  for (const d of ['bin', 'dev', 'etc', 'proc', 'root', 'run', 'sys', 'tmp', 'var'])
    await mkdir(join(rootfs, d), { recursive: true });
  await chmod(join(rootfs, 'tmp'), 0o1777);
}

export async function busyboxImage(o: ImageOptions = {}): Promise<TestImage> {
  return cachedImage('busybox', keyOf(await sha256File(BUSYBOX)), o, { Cmd: ['/bin/sh'] }, async (rootfs) => {
    await baseDirs(rootfs);
    await copyFile(BUSYBOX, join(rootfs, 'bin', 'busybox'));
    await chmod(join(rootfs, 'bin', 'busybox'), 0o755);
    const { stdout } = await runCommand(BUSYBOX, ['--list']);
    for (const applet of stdout.split('\n').filter((a) => a !== '' && a !== 'busybox')) {
      await symlink('busybox', join(rootfs, 'bin', applet));
    }
    await writeFile(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
    await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  });
}

/**
 * Runs `argv` chrooted into `rootfs`, where its binary was just copied in. The images are built
 * side by side, so another build's child may hold the new file open for writing for a moment
 * (a descriptor a fork inherits until its exec closes it); exec then fails with ETXTBSY ("Text
 * file busy"). That, and only that, is tried again, a few times.
 */
export async function runInRootfs(rootfs: string, argv: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await runCommand('chroot', [rootfs, ...argv]);
    } catch (e) {
      if (attempt >= 6 || !/Text file busy/.test((e as Error).message)) throw e;
      await sleep(100 * attempt);
    }
  }
}

const SERVER_BASE = {
  suite: 'bookworm',
  variant: 'minbase',
  // libisal2: a library of dotmesh-pump (the server image runs it); its other one, libssl3, comes with curl.
  include: ['btrfs-progs', 'util-linux', 'mount', 'curl', 'ca-certificates', 'libisal2'],
  prune: ['var/cache/apt', 'var/lib/apt/lists', 'usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale'],
} as const;

/**
 * `node` is the Node.js binary copied in (default: the one running this process); the build
 * checks that it runs inside the rootfs (its shared libraries are Debian 12's).
 */
export async function serverBaseImage(o: ImageOptions & { node?: string; mirror?: string } = {}): Promise<TestImage> {
  const node = o.node ?? process.execPath;
  const key = keyOf(JSON.stringify(SERVER_BASE), await sha256File(node));
  return cachedImage('server-base', key, o, { Cmd: ['/bin/sh'] }, async (rootfs) => {
    await debootstrapRootfs({ root: rootfs, ...SERVER_BASE, timeoutMs: BUILD_TIMEOUT_MS, ...o });
    const target = join(rootfs, 'usr/local/bin/node');
    await copyFile(node, target);
    await chmod(target, 0o755);
    const { stdout } = await runInRootfs(rootfs, ['/usr/local/bin/node', '-p', 'process.version']);
    o.log?.(`server-base: node ${stdout.trim()} runs in the rootfs`);
  });
}
