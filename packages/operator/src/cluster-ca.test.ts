import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { Cleanup, makeTempDir, makeTestCa, runCommand } from '@dotmesh/testkit';
import { CA_CERT_KEY, CA_HASH_KEY, CLUSTER_CA_CONFIGMAP, clusterCaConfigMap, holdsCa } from './cluster-ca.ts';

/** The pin as openssl computes it: SHA-256 of the DER SubjectPublicKeyInfo (kubeadm's recipe). */
async function opensslPin(certFile: string): Promise<string> {
  const out = await runCommand('sh', [
    '-c',
    'openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex',
    'pin',
    certFile,
  ]);
  return `sha256:${/([0-9a-f]{64})\s*$/.exec(out.stdout)![1]}`;
}

test('the ConfigMap dotmesh-cluster-ca: the CA certificate and its pin, checked against each other', async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const dir = await makeTempDir('cluster-ca', cleanup);
  const ca = await makeTestCa(dir, 'dmtest operator cluster CA');
  const pem = await readFile(ca.caCert, 'utf8');
  const pin = await opensslPin(ca.caCert);

  const cm = clusterCaConfigMap('dotmesh', { certificate: pem, caHash: pin });
  assert.equal(cm.metadata?.name, CLUSTER_CA_CONFIGMAP);
  assert.equal(cm.metadata?.namespace, 'dotmesh');
  assert.equal(cm.data?.[CA_HASH_KEY], pin);
  assert.equal(cm.data?.[CA_CERT_KEY]?.trim(), pem.trim());
  assert.ok(holdsCa(cm, { certificate: pem, caHash: pin }));
  assert.ok(!holdsCa(undefined, { certificate: pem, caHash: pin }), 'no ConfigMap: write it');

  // Another CA's pin, a leaf certificate, no certificate: refused (nothing is written).
  const other = await makeTestCa(await makeTempDir('cluster-ca-other', cleanup), 'dmtest another CA');
  const otherPin = await opensslPin(other.caCert);
  assert.ok(!holdsCa(cm, { certificate: await readFile(other.caCert, 'utf8'), caHash: otherPin }), 'another CA: rewrite it');
  assert.throws(
    () => clusterCaConfigMap('dotmesh', { certificate: pem, caHash: otherPin }),
    new RegExp(`pin ${pin}\\) does not match the pin it gave \\(${otherPin}\\)`),
  );
  const leaf = await ca.sign('server', '/CN=server', 'subjectAltName=IP:127.0.0.1\n');
  const leafPem = await readFile(leaf.cert, 'utf8');
  const leafPin = await opensslPin(leaf.cert);
  assert.throws(() => clusterCaConfigMap('dotmesh', { certificate: leafPem, caHash: leafPin }), /a certificate that is no CA/);
  assert.throws(() => clusterCaConfigMap('dotmesh', { certificate: 'not a certificate', caHash: pin }), /no certificate/);
});
