import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveServerConfig } from '@dotmesh/rpc';
import { type ClusterInitResult, initServerConfig, renderClusterInit } from './init.ts';
import { startCommand } from './state.ts';

describe('dm cluster init on a pool dir that has a cluster', () => {
  const wanted = { port: 32607, checkPort: 32608, tlsPort: 32606, sparse: false, poolSizeBytes: 10 * 2 ** 30 };

  it('a new pool dir: the wanted settings, defaults for the rest', () => {
    const c = initServerConfig('/p', null, wanted, new Set());
    assert.equal(c.port, 32607);
    assert.equal(c.tlsPort, 32606);
    assert.equal(c.poolSizeBytes, 10 * 2 ** 30);
  });

  it('an existing config keeps every field; only the settings given change', () => {
    const previous = resolveServerConfig({
      poolDir: '/p',
      port: 4000,
      checkPort: 4001,
      tlsPort: 4002,
      sparse: true,
      poolSizeBytes: 3 * 2 ** 30, // as dm cluster grow wrote it
      tlsSubjectAltNames: ['dotmesh.example.test'], // edited by hand
      transferAttempts: 9,
    });
    const same = initServerConfig('/p', previous, wanted, new Set());
    assert.deepEqual(same, previous, 'no flag given: the cluster as it was');
    const moved = initServerConfig('/p', previous, { ...wanted, port: 5000 }, new Set(['port']));
    assert.deepEqual(moved, { ...previous, port: 5000 });
    const all = initServerConfig('/p', previous, wanted, undefined);
    assert.equal(all.port, 32607, 'without a given set every wanted setting counts');
    assert.deepEqual(all.tlsSubjectAltNames, ['dotmesh.example.test'], 'fields that are no flag stay');
  });
});

describe('dm cluster init output', () => {
  const base: ClusterInitResult = {
    serverConfigFile: '/p/server/config.json',
    serverBin: '/x',
    serverVersion: '0.1.0',
    pid: 1,
    url: 'http://127.0.0.1:32607/rpc',
    remote: 'local',
    admin: 'new',
    adminPasswordFile: '/root/.dotmesh/admin-password.txt',
    systemdUnit: null,
    startCommand: startCommand('/p'),
    config: resolveServerConfig({ poolDir: '/p' }),
    tlsFingerprint: null,
    pinnedBy: null,
    joinedThrough: null,
    caPin: null,
    etcdMember: null,
  };
  const text = (r: ClusterInitResult) => renderClusterInit(r).join('\n');

  it('prints the HTTPS port and the certificate fingerprint', () => {
    const FP = `${'AB:'.repeat(31)}AB`;
    const withTls: ClusterInitResult = {
      ...base,
      config: resolveServerConfig({ poolDir: '/p', tlsPort: 32606 }),
      tlsFingerprint: FP,
      pinnedBy: 'certificate',
    };
    assert.ok(text(withTls).includes(`HTTPS API on port 32606; certificate SHA256 fingerprint ${FP}`), text(withTls));
    assert.ok(text(withTls).includes('--trust-fingerprint <fingerprint>'), 'a given certificate is pinned by itself');
    assert.ok(!text(base).includes('HTTPS'));
  });
  it('a certificate of the cluster CA is pinned by the CA: a single node prints the pin that trusts it', () => {
    const pin = `sha256:${'d'.repeat(64)}`;
    const out = text({
      ...base,
      config: resolveServerConfig({ poolDir: '/p', tlsPort: 32606 }),
      tlsFingerprint: `${'AB:'.repeat(31)}AB`,
      pinnedBy: 'cluster-ca',
      caPin: pin,
    });
    assert.ok(out.includes('(pinned in known_servers by the cluster CA that issued it'), out);
    assert.ok(!out.includes('--trust-fingerprint'), out);
    assert.ok(
      out.includes(`Cluster CA pin ${pin}: 'dm remote add <name> admin@<this host>:32606 --trust-ca ${pin}' trusts this node`),
      out,
    );
  });
  it('a node of several with HTTPS: the cluster CA pin and how to trust every node by it', () => {
    const pin = `sha256:${'c'.repeat(64)}`;
    const config = resolveServerConfig({
      poolDir: '/p',
      tlsPort: 32606,
      clusterPort: 32609,
      store: 'etcd',
      etcdEndpoints: ['http://e:2379'],
    });
    const out = text({ ...base, config, caPin: pin });
    assert.ok(out.includes(`Cluster CA pin ${pin}: 'dm remote add <name> admin@<any node>:32606 --trust-ca ${pin}'`), out);
    assert.ok(!text({ ...base, caPin: pin }).includes('Cluster CA pin'), 'no HTTPS: nothing to pin');
  });
  it('a node running a managed etcd member says which, how many vote, and how many more make three', () => {
    const config = resolveServerConfig({
      poolDir: '/p',
      clusterPort: 32609,
      store: 'etcd',
      etcdEndpoints: ['https://10.0.0.1:42379'],
      etcdCaFile: '/p/server/tls/ca.pem',
      etcdMember: { bin: '/usr/bin/etcd', clientPort: 42379, peerPort: 42380 },
    });
    const member = { name: 'n1', id: '8e9e05c52164694d', voting: true, members: 1, voters: 1 };
    const first = text({ ...base, config, etcdMember: member });
    assert.match(
      first,
      /This host runs etcd member 8e9e05c52164694d of the cluster's store \(voting; 1 voting of 1 member\(s\)\)/,
    );
    assert.match(first, /its data in \/p\/server\/etcd\./);
    assert.match(first, /2 more join\(s\) make members\./);
    const third = text({ ...base, config, etcdMember: { ...member, members: 3, voters: 3 } });
    assert.doesNotMatch(third, /more join/, 'three members: nothing more to add');
    const client = resolveServerConfig({
      poolDir: '/p',
      clusterPort: 32609,
      store: 'etcd',
      etcdEndpoints: ['https://10.0.0.1:42379'],
      etcdCaFile: '/p/server/tls/ca.pem',
      etcdCertFile: '/p/server/tls/etcd.pem',
      etcdKeyFile: '/p/server/tls/etcd-key.pem',
    });
    assert.match(
      text({ ...base, config: client, joinedThrough: '10.0.0.1:32609', admin: 'unknown' }),
      /The cluster's etcd has its three members: this node uses them and runs none\./,
    );
  });
  it('without systemd: the command to run after a reboot or a crash', () => {
    assert.match(text(base), /after a reboot or a crash, start it with 'dm cluster start --use-pool-dir \/p'/);
    assert.equal(startCommand('/var/lib/dotmesh'), 'dm cluster start');
  });
  it('with systemd: the unit does it', () => {
    assert.match(
      text({ ...base, systemdUnit: 'dotmesh-server.service' }),
      /unit dotmesh-server\.service runs the server: it starts it at boot/,
    );
  });
  it('a kept admin: says the keys stay, and where the password is when this config has it', () => {
    const kept = text({ ...base, admin: 'kept' });
    assert.match(
      kept,
      /keeps its admin password, API keys and users \(remotes elsewhere keep working\); the admin password is in \/root/,
    );
    assert.doesNotMatch(text({ ...base, admin: 'kept', adminPasswordFile: null }), /admin password is in/);
  });
});
