import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from '../cleanup.ts';
import { runCommand } from '../process.ts';
import type { TestCluster } from './cluster.ts';

/** The module whose config/crd holds the VolumeSnapshot CRDs (the version csi-snapshotter v8.7.0 requires). */
const SNAPSHOTTER_CLIENT_MODULE = 'github.com/kubernetes-csi/external-snapshotter/client/v8@v8.7.0';
const TOOLS_SNAPSHOTTER = join(import.meta.dirname, '../../../../tools/k8s/csi-snapshotter');

/**
 * The VolumeSnapshot CRD files of external-snapshotter's client module v8.7.0, from the Go module
 * cache tools/k8s/build filled (`go mod download` finds them there; no network).
 */
export async function volumeSnapshotCrdFiles(): Promise<string[]> {
  const go = [process.env.DOTMESH_GO, '/usr/local/go/bin/go'].find((g) => g && existsSync(g)) ?? 'go';
  const { stdout } = await runCommand(go, ['mod', 'download', '-json', SNAPSHOTTER_CLIENT_MODULE], {
    cwd: TOOLS_SNAPSHOTTER,
    env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' },
  });
  const dir = join((JSON.parse(stdout) as { Dir: string }).Dir, 'config', 'crd');
  return (await readdir(dir)).filter((f) => f.startsWith('snapshot.storage.k8s.io_')).map((f) => join(dir, f));
}

/** Applies the VolumeSnapshot CRDs (what the docs tell users to install first) and removes them at cleanup. */
export async function installVolumeSnapshotCrds(cluster: TestCluster, cleanup: Cleanup): Promise<void> {
  const crds = await volumeSnapshotCrdFiles();
  for (const crd of crds) await cluster.kubectl(['apply', '-f', crd]);
  cleanup.add(async () => {
    for (const crd of crds) await cluster.kubectl(['delete', '-f', crd, '--wait=false', '--ignore-not-found']);
  }, 'remove the VolumeSnapshot CRDs');
  await cluster.kubectl([
    'wait',
    '--for=condition=established',
    '--timeout=60s',
    'crd/volumesnapshots.snapshot.storage.k8s.io',
    'crd/volumesnapshotclasses.snapshot.storage.k8s.io',
    'crd/volumesnapshotcontents.snapshot.storage.k8s.io',
  ]);
}
