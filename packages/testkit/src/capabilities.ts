import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { findK8sTools } from './k8s/tools.ts';

/**
 * Capability gates for tests. Outside CI a test that lacks a capability is skipped with the
 * reason; under CI=true it fails instead, so a green CI run proves the real thing ran.
 */
export type Capability = 'root' | 'btrfs' | 'etcd' | 'losetup' | 'netns' | 'docker' | 'debootstrap' | 'k8s';

const checks: Record<Capability, () => string | undefined> = {
  root: () => (process.getuid?.() === 0 ? undefined : 'needs root'),
  btrfs: () => {
    const fs = existsSync('/proc/filesystems') ? readFileSync('/proc/filesystems', 'utf8') : '';
    if (!/\bbtrfs\b/.test(fs)) return 'the kernel has no btrfs';
    return commandMissing('mkfs.btrfs') ?? commandMissing('btrfs');
  },
  etcd: () => commandMissing('etcd'),
  losetup: () => commandMissing('losetup'),
  netns: () => commandMissing('ip') ?? commandMissing('nsenter') ?? ipNetnsFails(),
  // Debian's docker.io (engine + CLI at these paths) and busybox-static for a base image.
  docker: () =>
    ['/usr/sbin/dockerd', '/usr/bin/docker', '/bin/busybox']
      .filter((p) => !existsSync(p))
      .map((p) => `${p} is missing (apt-get install docker.io busybox-static)`)[0],
  // Builds the Debian rootfs of test images (postgres-image.ts); also needs flock (util-linux).
  debootstrap: () =>
    existsSync('/usr/sbin/debootstrap')
      ? commandMissing('flock')
      : '/usr/sbin/debootstrap is missing (apt-get install debootstrap)',
  // The test Kubernetes cluster (k8s/cluster.ts): Debian's containerd, runc, CNI plugins and
  // iptables (kube-proxy), and the binaries tools/k8s/build makes (it needs Go >= 1.26).
  k8s: () =>
    [
      ['/usr/bin/containerd', 'containerd'],
      ['/usr/bin/ctr', 'containerd'],
      ['/usr/sbin/runc', 'runc'],
      ['/usr/lib/cni/bridge', 'containernetworking-plugins'],
      ['/usr/lib/cni/host-local', 'containernetworking-plugins'],
      ['/usr/lib/cni/loopback', 'containernetworking-plugins'],
      ['/usr/sbin/iptables', 'iptables'],
    ]
      .filter(([p]) => !existsSync(p!))
      .map(([p, pkg]) => `${p} is missing (apt-get install ${pkg})`)[0] ??
    commandMissing('openssl') ??
    commandMissing('curl') ??
    (() => {
      const found = findK8sTools();
      return found.ok ? undefined : found.reason;
    })(),
};

/** `ip netns list` must work (it needs root and a kernel with network namespaces). */
function ipNetnsFails(): string | undefined {
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return '`ip netns list` fails (needs root and network namespaces)';
  }
}

function commandMissing(cmd: string): string | undefined {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return undefined;
  } catch {
    return `${cmd} is not installed`;
  }
}

export function isCI(): boolean {
  return process.env.CI === 'true';
}

/** Reasons why the capabilities are missing (empty when all are present). */
export function missingCapabilities(caps: readonly Capability[]): string[] {
  return caps.map((c) => checks[c]()).filter((r): r is string => r !== undefined);
}

/**
 * Returns true when the test may go on. Otherwise skips it (outside CI) or throws (CI).
 */
export function requireCapabilities(t: TestContext, caps: readonly Capability[]): boolean {
  const missing = missingCapabilities(caps);
  if (missing.length === 0) return true;
  const reason = missing.join('; ');
  if (isCI()) throw new Error(`missing capability under CI=true: ${reason}`);
  t.skip(reason);
  return false;
}

/** For `describe`/`test` options: `{ skip: skipUnless(['root']) }`; under CI never skips. */
export function skipUnless(caps: readonly Capability[]): string | false {
  const missing = missingCapabilities(caps);
  if (missing.length === 0 || isCI()) return false;
  return missing.join('; ');
}
