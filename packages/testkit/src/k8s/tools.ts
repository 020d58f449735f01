import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The Kubernetes test tooling that `tools/k8s/build` builds from the repository's Go modules
 * into a cache outside the clone (kube-apiserver, kubelet, kubectl, etcd 3.6, csi-sanity, the
 * CSI sidecars (csi-provisioner, csi-attacher, csi-resizer, csi-snapshotter), the pause program) and the .proto files it copies there.
 */
export interface K8sTools {
  /** The cache directory of this build (`<cache>/<key>`). */
  readonly dir: string;
  readonly binDir: string;
  readonly goVersion: string;
  /** Command names present in binDir. */
  readonly binaries: readonly string[];
  /** csi.proto (CSI spec v1.13.0) and the kubelet's plugin-registration api.proto (v0.35.8). */
  readonly protos: { readonly csi: string; readonly pluginRegistration: string };
  /** Absolute path of a binary; throws when the build has no such command. */
  bin(name: string): string;
}

/** The repository's `tools/k8s/build`. */
export const K8S_TOOLS_SCRIPT = fileURLToPath(new URL('../../../../tools/k8s/build', import.meta.url));

/** Exit statuses of `tools/k8s/build` (see its header). */
export const K8S_TOOLS_NO_GO = 3;
export const K8S_TOOLS_NOT_BUILT = 4;

export type K8sToolsLookup = { readonly ok: true; readonly tools: K8sTools } | { readonly ok: false; readonly reason: string };

let cached: K8sToolsLookup | undefined;

/**
 * Finds the built tools without building anything (`tools/k8s/build --print-dir`). The answer is
 * remembered for the life of the process. `reason` says what is missing: no Go >= 1.26, or
 * not built yet (with the command that builds them).
 */
export function findK8sTools(env: NodeJS.ProcessEnv = process.env): K8sToolsLookup {
  cached ??= lookup(env);
  return cached;
}

function lookup(env: NodeJS.ProcessEnv): K8sToolsLookup {
  if (!existsSync(K8S_TOOLS_SCRIPT)) return { ok: false, reason: `${K8S_TOOLS_SCRIPT} is missing` };
  const r = spawnSync(K8S_TOOLS_SCRIPT, ['--print-dir'], { encoding: 'utf8', env, timeout: 60_000 });
  if (r.status === 0) return { ok: true, tools: readManifest(r.stdout.trim()) };
  if (r.status === K8S_TOOLS_NO_GO) return { ok: false, reason: r.stderr.trim().replace(/^k8s-tools: /, '') };
  if (r.status === K8S_TOOLS_NOT_BUILT) {
    return { ok: false, reason: 'the Kubernetes test tools are not built: run tools/k8s/build (scripts/test-all does)' };
  }
  return { ok: false, reason: `tools/k8s/build --print-dir failed (${r.status ?? r.signal}): ${r.stderr.trim()}` };
}

interface Manifest {
  readonly goVersion: string;
  readonly binDir: string;
  readonly binaries: string[];
  readonly protos: { csi: string; pluginRegistration: string };
}

/** Reads `<dir>/tools.json`, written last by tools/k8s/build. */
export function readManifest(dir: string): K8sTools {
  const m = JSON.parse(readFileSync(join(dir, 'tools.json'), 'utf8')) as Manifest;
  return {
    dir,
    binDir: m.binDir,
    goVersion: m.goVersion,
    binaries: m.binaries,
    protos: m.protos,
    bin(name) {
      if (!m.binaries.includes(name))
        throw new Error(`the Kubernetes test tools in ${dir} have no ${name} (${m.binaries.join(', ')})`);
      return join(m.binDir, name);
    },
  };
}
