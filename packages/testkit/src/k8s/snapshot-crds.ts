import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from '../cleanup.ts';
import { runCommand } from '../process.ts';
import type { TestCluster } from './cluster.ts';

/**
 * The module whose config/crd holds the VolumeSnapshot and VolumeGroupSnapshot CRDs (the version
 * csi-snapshotter and snapshot-controller v8.7.0 require).
 */
const SNAPSHOTTER_CLIENT_MODULE = 'github.com/kubernetes-csi/external-snapshotter/client/v8@v8.7.0';
const TOOLS_SNAPSHOTTER = join(import.meta.dirname, '../../../../tools/k8s/csi-snapshotter');

/**
 * The CRD files of external-snapshotter's client module v8.7.0 that its kustomization (what the
 * docs tell users to apply) lists: snapshot.storage.k8s.io (VolumeSnapshot…) and
 * groupsnapshot.storage.k8s.io (VolumeGroupSnapshot…), from the Go module cache tools/k8s/build
 * filled (`go mod download` finds them there; no network).
 */
export async function volumeSnapshotCrdFiles(): Promise<string[]> {
  const go = [process.env.DOTMESH_GO, '/usr/local/go/bin/go'].find((g) => g && existsSync(g)) ?? 'go';
  const { stdout } = await runCommand(go, ['mod', 'download', '-json', SNAPSHOTTER_CLIENT_MODULE], {
    cwd: TOOLS_SNAPSHOTTER,
    env: { ...process.env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' },
  });
  const dir = join((JSON.parse(stdout) as { Dir: string }).Dir, 'config', 'crd');
  return (await readdir(dir))
    .filter((f) => f.startsWith('snapshot.storage.k8s.io_') || f.startsWith('groupsnapshot.storage.k8s.io_'))
    .map((f) => join(dir, f));
}

/**
 * Applies the VolumeSnapshot and VolumeGroupSnapshot CRDs (what the docs tell users to install
 * first: snapshot-controller and csi-snapshotter v8.7.0 look for the group CRDs once, when they
 * start, and run without group snapshots when they are missing) and removes them at cleanup.
 */
export async function installVolumeSnapshotCrds(cluster: TestCluster, cleanup: Cleanup): Promise<void> {
  const crds = await volumeSnapshotCrdFiles();
  for (const crd of crds) await cluster.kubectl(['apply', '-f', crd]);
  cleanup.add(async () => {
    for (const crd of crds) await cluster.kubectl(['delete', '-f', crd, '--wait=false', '--ignore-not-found']);
  }, 'remove the VolumeSnapshot and VolumeGroupSnapshot CRDs');
  await cluster.kubectl([
    'wait',
    '--for=condition=established',
    '--timeout=60s',
    'crd/volumesnapshots.snapshot.storage.k8s.io',
    'crd/volumesnapshotclasses.snapshot.storage.k8s.io',
    'crd/volumesnapshotcontents.snapshot.storage.k8s.io',
    'crd/volumegroupsnapshots.groupsnapshot.storage.k8s.io',
    'crd/volumegroupsnapshotclasses.groupsnapshot.storage.k8s.io',
    'crd/volumegroupsnapshotcontents.groupsnapshot.storage.k8s.io',
  ]);
}
