import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { Cleanup } from '../cleanup.ts';
import { runCommand } from '../process.ts';
import { makeTempDir } from '../tmp.ts';
import { cgroupHierarchies } from './cgroups.ts';
import { sha256File, writeImageArchive } from './image-tar.ts';
import { clusterNodeName, networkNames, nodeAddresses, nodeNetworkNames, secondOctetOf } from './network.ts';
import { kubeconfigYaml } from './pki.ts';
import { shimSocketPath } from './teardown.ts';

test('network names carry the run prefix and fit Linux interface names', () => {
  const n = networkNames('a1f', ['node-0', 'node-1'], 'dm12ab-');
  assert.equal(n.bridge, 'dm12ab-ka1fb');
  assert.deepEqual(
    n.nodes.map((x) => [x.name, x.netns, x.hostVeth]),
    [
      ['node-0', 'dm12ab-ka1fn0', 'dm12ab-ka1fv0'],
      ['node-1', 'dm12ab-ka1fn1', 'dm12ab-ka1fv1'],
    ],
  );
  assert.throws(() => networkNames('a1f', ['node-0'], 'a-much-too-long-'), /longer than 15 bytes.*DOTMESH_TEST_NETNS_PREFIX/);
});

test('a node added later gets the names and addresses of its index, within the cluster’s ranges', () => {
  const n = networkNames('a1f', ['node-0', 'node-1', 'node-2'], 'dm12ab-');
  assert.deepEqual(nodeNetworkNames(n, 'node-12', 12), { name: 'node-12', netns: 'dm12ab-ka1fn12', hostVeth: 'dm12ab-ka1fv12' });
  assert.deepEqual(nodeAddresses(233, 3), { ip: '10.233.0.14', podCidr: '10.233.35.0/24' });
  assert.deepEqual(nodeAddresses(233, 31), { ip: '10.233.0.42', podCidr: '10.233.63.0/24' });
  assert.equal(clusterNodeName(4), 'node-4');
  assert.throws(() => clusterNodeName(32), /nodes 0 to 31/);
  assert.equal(secondOctetOf('10.233.0.1'), 233);
  assert.throws(() => secondOctetOf('10.233.0.2'), /no test cluster bridge address/);
});

test('an image archive has docker-save layout: manifest, config with the layer digest, one layer', async () => {
  await using cleanup = new Cleanup();
  const dir = await makeTempDir('k8s-image', cleanup);
  const rootfs = join(dir, 'rootfs');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await writeFile(join(rootfs, 'bin', 'hello'), 'hello\n', { mode: 0o755 });
  const out = join(dir, 'image.tar');
  await writeImageArchive({
    rootfs,
    ref: 'dotmesh.test/hello:1',
    config: { Entrypoint: ['/bin/hello'] },
    work: join(dir, 'work'),
    out,
  });

  const x = join(dir, 'x');
  await mkdir(x);
  await runCommand('tar', ['-C', x, '-xf', out]);
  const manifest = JSON.parse(await readFile(join(x, 'manifest.json'), 'utf8')) as {
    Config: string;
    RepoTags: string[];
    Layers: string[];
  }[];
  assert.equal(manifest.length, 1);
  assert.deepEqual(manifest[0]!.RepoTags, ['dotmesh.test/hello:1']);
  const configText = await readFile(join(x, manifest[0]!.Config), 'utf8');
  assert.equal(
    manifest[0]!.Config,
    `${createHash('sha256').update(configText).digest('hex')}.json`,
    'the config is named by its digest',
  );
  const config = JSON.parse(configText) as { os: string; config: { Entrypoint: string[] }; rootfs: { diff_ids: string[] } };
  assert.equal(config.os, 'linux');
  assert.deepEqual(config.config.Entrypoint, ['/bin/hello']);
  assert.equal(manifest[0]!.Layers.length, 1);
  const layer = join(x, manifest[0]!.Layers[0]!);
  assert.deepEqual(config.rootfs.diff_ids, [`sha256:${await sha256File(layer)}`], 'the diff id is the layer digest');
  const { stdout } = await runCommand('tar', ['-tvf', layer]);
  assert.match(stdout, /-rwxr-xr-x 0\/0 .* \.\/bin\/hello$/m, 'the file, its mode and numeric root ownership');
});

test("a layered image archive: the base archive's layers unchanged, then one of the given paths", async () => {
  await using cleanup = new Cleanup();
  const dir = await makeTempDir('k8s-image', cleanup);
  const rootfs = join(dir, 'rootfs');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await writeFile(join(rootfs, 'bin', 'base-file'), 'base\n');
  const baseOut = join(dir, 'base.tar');
  await writeImageArchive({ rootfs, ref: 'dotmesh.test/base:1', config: {}, work: join(dir, 'w1'), out: baseOut });
  const base = join(dir, 'base');
  await mkdir(base);
  await runCommand('tar', ['-C', base, '-xf', baseOut]);
  await mkdir(join(rootfs, 'opt', 'app'), { recursive: true });
  await writeFile(join(rootfs, 'opt', 'app', 'run'), 'app\n', { mode: 0o755 });
  const out = join(dir, 'app.tar');
  await writeImageArchive({
    rootfs,
    ref: 'dotmesh.test/app:1',
    config: { Entrypoint: ['/opt/app/run'] },
    work: join(dir, 'w2'),
    out,
    base: { dir: base },
    paths: ['./opt/app'],
  });

  const x = join(dir, 'x');
  await mkdir(x);
  await runCommand('tar', ['-C', x, '-xf', out]);
  const [manifest] = JSON.parse(await readFile(join(x, 'manifest.json'), 'utf8')) as { Config: string; Layers: string[] }[];
  const [baseManifest] = JSON.parse(await readFile(join(base, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
  assert.equal(manifest!.Layers.length, 2);
  assert.equal(manifest!.Layers[0], baseManifest!.Layers[0], 'the base layer under its own name');
  assert.equal(await sha256File(join(x, manifest!.Layers[0]!)), await sha256File(join(base, baseManifest!.Layers[0]!)));
  const config = JSON.parse(await readFile(join(x, manifest!.Config), 'utf8')) as { rootfs: { diff_ids: string[] } };
  assert.deepEqual(config.rootfs.diff_ids, [
    `sha256:${await sha256File(join(x, manifest!.Layers[0]!))}`,
    `sha256:${await sha256File(join(x, manifest!.Layers[1]!))}`,
  ]);
  const { stdout } = await runCommand('tar', ['-tf', join(x, manifest!.Layers[1]!)]);
  assert.deepEqual(stdout.trim().split('\n').sort(), ['./opt/app/', './opt/app/run'], 'only the given paths');
});

test('shim socket paths follow containerd 1.6: /run/containerd/s/sha256(address/namespace/id)', () => {
  const want = createHash('sha256').update('/x/containerd.sock/k8s.io/abc').digest('hex');
  assert.equal(shimSocketPath('/x/containerd.sock', 'k8s.io', 'abc'), `/run/containerd/s/${want}`);
});

test('cgroup hierarchies are read from mountinfo (v1 controllers, named and unified)', () => {
  const mountinfo = [
    '30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw',
    '31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu',
    '32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd',
    '33 30 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw',
    '40 25 8:1 / /data rw - ext4 /dev/vda rw',
  ].join('\n');
  assert.deepEqual(cgroupHierarchies(mountinfo), ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified']);
});

test('a kubeconfig names the server, trusts the CA file and carries the token', () => {
  const y = kubeconfigYaml({ server: 'https://10.1.0.1:6443', caFile: '/p/ca.pem', token: 'abc', user: 'system:node:n0' });
  assert.match(y, /server: https:\/\/10\.1\.0\.1:6443/);
  assert.match(y, /certificate-authority: \/p\/ca\.pem/);
  assert.match(y, /- name: system:node:n0\n {2}user:\n {4}token: abc/);
  assert.match(y, /current-context: dmtest/);
});
