import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  defaultServerConfig,
  parseServerConfigText,
  parseSize,
  resolveFlexVolumeDir,
  resolveServerConfig,
} from './server-config.ts';

describe('parseSize', () => {
  it('reads binary units like truncate -s', () => {
    assert.equal(parseSize('10G'), 10 * 2 ** 30);
    assert.equal(parseSize('512M'), 512 * 2 ** 20);
    assert.equal(parseSize('1T'), 2 ** 40);
    assert.equal(parseSize('1GiB'), 2 ** 30);
    assert.equal(parseSize('4096'), 4096);
    assert.equal(parseSize(1234), 1234);
    assert.equal(parseSize('1.5k'), 1536);
  });
  it('refuses garbage with INVALID_ARGUMENT', () => {
    for (const bad of ['', 'ten', '-1G', '0', '10X', 0, -5, 1.5]) {
      assert.throws(() => parseSize(bad), { code: 'INVALID_ARGUMENT' }, String(bad));
    }
  });
});

describe('server config', () => {
  it('derives every default from the pool dir', () => {
    assert.deepEqual(defaultServerConfig('/var/lib/dotmesh'), {
      poolDir: '/var/lib/dotmesh',
      poolFile: '/var/lib/dotmesh/dotmesh_data',
      poolSizeBytes: 10 * 2 ** 30,
      sparse: false,
      existingMount: null,
      mountPoint: '/var/lib/dotmesh/mnt',
      releasePoolAtStop: false,
      stateDir: '/var/lib/dotmesh/server',
      storeFile: '/var/lib/dotmesh/server/store.db',
      syncCommitTimeoutMs: 30_000,
      logFile: '/var/lib/dotmesh/server/dotmesh-server.log',
      pidFile: '/var/lib/dotmesh/server/dotmesh-server.pid',
      initialAdminFile: '/var/lib/dotmesh/server/initial-admin.json',
      join: null,
      joinTokenFile: '/var/lib/dotmesh/server/join-token',
      importStoreFile: null,
      etcdMember: null,
      etcdMoveWaitSeconds: 120,
      etcdWriteTimeoutMs: 1500,
      listenHost: '0.0.0.0',
      port: 32607,
      checkPort: 32608,
      hostFreeReserveBytes: 2 ** 30,
      hostCheckIntervalMs: 5000,
      store: 'embedded',
      etcdEndpoints: [],
      etcdCaFile: null,
      etcdCertFile: null,
      etcdKeyFile: null,
      etcdPrefix: '',
      tlsPort: 0,
      tlsCertFile: null,
      tlsKeyFile: null,
      tlsSubjectAltNames: [],
      transferIdleTimeoutMs: 30_000,
      transferAttempts: 5,
      transferBackoffMs: 2000,
      transferStreamUpgrade: true,
      transferDataConnections: true,
      replicate: true,
      replicationSweepMs: 30_000,
      replicationConcurrency: 2,
      failover: true,
      failoverSweepMs: 3000,
      restartGraceSeconds: 120,
      pumpBinary: null,
      flexVolumeDir: undefined,
      flexVolumeDriver: null,
      dockerPluginSocket: '/run/docker/plugins/dm.sock',
      dockerSocket: '/var/run/docker.sock',
      dockerPluginUser: 'admin',
      clusterPort: 0,
      advertiseAddress: null,
      nodeLeaseTtlSeconds: 10,
    });
  });
  it('takes a node-to-node port apart from the others, an IP address to advertise, a lease TTL', () => {
    const c = resolveServerConfig({ clusterPort: 32609, advertiseAddress: '10.0.0.5', nodeLeaseTtlSeconds: 4 });
    assert.equal(c.clusterPort, 32609);
    assert.equal(c.advertiseAddress, '10.0.0.5');
    assert.equal(c.nodeLeaseTtlSeconds, 4);
    assert.throws(() => resolveServerConfig({ clusterPort: 32607 }), /clusterPort must differ from port, checkPort and tlsPort/);
    assert.throws(() => resolveServerConfig({ advertiseAddress: 'node-1' }), /advertiseAddress must be an IP address/);
    assert.throws(() => resolveServerConfig({ nodeLeaseTtlSeconds: 1 }), /nodeLeaseTtlSeconds/);
  });
  it('takes a Docker plugin socket named <driver>.sock, or null', () => {
    assert.equal(
      resolveServerConfig({ dockerPluginSocket: '/run/docker/plugins/dm2.sock' }).dockerPluginSocket,
      '/run/docker/plugins/dm2.sock',
    );
    assert.equal(resolveServerConfig({ dockerPluginSocket: null }).dockerPluginSocket, null);
    assert.throws(
      () => resolveServerConfig({ dockerPluginSocket: '/run/docker/plugins/dm' }),
      /dockerPluginSocket must end in \/<driver name>\.sock/,
    );
    assert.throws(() => resolveServerConfig({ dockerPluginSocket: 'dm.sock' }), /dockerPluginSocket must be an absolute path/);
    assert.throws(() => resolveServerConfig({ dockerPluginUser: 'a b' }), /dockerPluginUser must be a user name/);
  });
  it('round-trips a resolved config through JSON', () => {
    const c = resolveServerConfig({ poolDir: '/p', poolSizeBytes: '1G', sparse: true, port: 4000, nodeName: 'n1' });
    assert.deepEqual(parseServerConfigText(JSON.stringify(c)), c);
    assert.equal(c.stateDir, '/p/server');
    assert.equal(c.nodeName, 'n1');
  });
  it('refuses relative paths and bad ports', () => {
    assert.throws(() => resolveServerConfig({ poolDir: 'rel' }), /poolDir must be an absolute path/);
    assert.throws(() => resolveServerConfig({ port: 70000 }), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => parseServerConfigText('{'), /not JSON/);
  });
  it('takes etcd settings and refuses incomplete ones', () => {
    const c = resolveServerConfig({
      poolDir: '/p',
      store: 'etcd',
      etcdEndpoints: ['https://10.0.0.1:2379'],
      etcdCaFile: '/etc/ca.pem',
      etcdCertFile: '/etc/c.pem',
      etcdKeyFile: '/etc/c.key',
    });
    assert.equal(c.store, 'etcd');
    assert.deepEqual(parseServerConfigText(JSON.stringify(c)), c);
    assert.throws(() => resolveServerConfig({ store: 'etcd' }), /needs etcdEndpoints/);
    assert.throws(() => resolveServerConfig({ store: 'etcd', etcdEndpoints: ['https://h:1'] }), /etcdCaFile/);
    assert.throws(() => resolveServerConfig({ store: 'etcd', etcdEndpoints: ['h:1'] }), /etcdEndpoints/);
    assert.throws(() => resolveServerConfig({ store: 'zk' }), { code: 'INVALID_ARGUMENT' });
  });
  it('takes how long a moved etcd member waits, in whole seconds from 5 to 3600', () => {
    assert.equal(resolveServerConfig({ etcdMoveWaitSeconds: 15 }).etcdMoveWaitSeconds, 15);
    for (const bad of [0, 4, 3601, 1.5, -1, '30']) {
      assert.throws(() => resolveServerConfig({ etcdMoveWaitSeconds: bad }), {
        code: 'INVALID_ARGUMENT',
        message: /invalid server config: etcdMoveWaitSeconds/,
      });
    }
  });
});

describe('the FlexVolume directory', () => {
  const dir = '/usr/libexec/kubernetes/kubelet-plugins/volume/exec';
  it('is nowhere outside Kubernetes unless configured, the original default under Kubernetes', () => {
    assert.equal(resolveFlexVolumeDir(resolveServerConfig({}), {}), null);
    assert.equal(resolveFlexVolumeDir(resolveServerConfig({}), { KUBERNETES_SERVICE_HOST: '10.0.0.1' }), dir);
    assert.equal(resolveFlexVolumeDir(resolveServerConfig({ flexVolumeDir: '/k/exec' }), {}), '/k/exec');
    assert.equal(resolveFlexVolumeDir(resolveServerConfig({ flexVolumeDir: null }), { KUBERNETES_SERVICE_HOST: 'x' }), null);
  });
  it('DOTMESH_FLEXVOLUME_DIR overrides the config ("" or none: nowhere); it must be absolute', () => {
    const config = resolveServerConfig({ flexVolumeDir: '/k/exec' });
    assert.equal(
      resolveFlexVolumeDir(config, { DOTMESH_FLEXVOLUME_DIR: '/home/kubernetes/flexvolume' }),
      '/home/kubernetes/flexvolume',
    );
    assert.equal(resolveFlexVolumeDir(config, { DOTMESH_FLEXVOLUME_DIR: 'none' }), null);
    assert.equal(resolveFlexVolumeDir(config, { DOTMESH_FLEXVOLUME_DIR: '' }), null);
    assert.throws(() => resolveFlexVolumeDir(config, { DOTMESH_FLEXVOLUME_DIR: 'relative' }), /must be an absolute path/);
    assert.throws(() => resolveServerConfig({ flexVolumeDir: 'relative' }), /flexVolumeDir must be an absolute path/);
    assert.throws(() => resolveServerConfig({ flexVolumeDriver: 'dm' }), /flexVolumeDriver must be an absolute path/);
  });
});
