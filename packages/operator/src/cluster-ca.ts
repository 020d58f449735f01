import { X509Certificate } from 'node:crypto';
import { publicKeyPin } from '@dotmesh/rpc/tls';
import { ApiException, type CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import { adminClient } from './admin-client.ts';
import type { Logger } from './logger.ts';

/**
 * The ConfigMap `dotmesh-cluster-ca` (keys `ca.crt`: the cluster CA's certificate, PEM;
 * `ca-hash`: its pin, `sha256:<hex>` of its SubjectPublicKeyInfo): what a workstation needs to
 * trust every server of the cluster over HTTPS (`dm remote add … --trust-ca <ca-hash>`). Not a
 * secret: a CA certificate and its pin are public (the CA's key never leaves the servers). The
 * operator writes it once a server serves, from that server's `ClusterCa` (as admin), and
 * rewrites it when what it holds is not the cluster's.
 */
export const CLUSTER_CA_CONFIGMAP = 'dotmesh-cluster-ca';
export const CA_CERT_KEY = 'ca.crt';
export const CA_HASH_KEY = 'ca-hash';

export interface ClusterCa {
  readonly certificate: string;
  readonly caHash: string;
}

/** The ConfigMap for a CA; refuses a certificate that is no CA or whose pin is not `caHash`. */
export function clusterCaConfigMap(namespace: string, ca: ClusterCa): V1ConfigMap {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(ca.certificate);
  } catch {
    throw new Error('the server answered ClusterCa with no certificate');
  }
  if (!cert.ca) throw new Error(`the server answered ClusterCa with a certificate that is no CA (${cert.subject})`);
  const pin = publicKeyPin(cert);
  if (pin !== ca.caHash) {
    throw new Error(`the server's cluster CA (pin ${pin}) does not match the pin it gave (${ca.caHash})`);
  }
  return {
    metadata: { name: CLUSTER_CA_CONFIGMAP, namespace },
    data: { [CA_CERT_KEY]: cert.toString(), [CA_HASH_KEY]: pin },
  };
}

/** Whether the ConfigMap holds this CA (so nothing is to be written). */
export function holdsCa(cm: V1ConfigMap | undefined, ca: ClusterCa): boolean {
  return cm?.data?.[CA_HASH_KEY] === ca.caHash && cm.data[CA_CERT_KEY] !== undefined;
}

/**
 * Asks the server at `serverAddress` for the cluster CA and makes or replaces the ConfigMap
 * when it does not hold it. Returns whether it wrote.
 */
export async function publishClusterCa(
  o: { readonly core: CoreV1Api; readonly namespace: string; readonly log: Logger },
  serverAddress: string,
  current: V1ConfigMap | undefined,
): Promise<boolean> {
  const client = await adminClient(o, serverAddress);
  const answer = await client.call('ClusterCa', {});
  const ca = { certificate: answer.Certificate, caHash: answer.CaHash };
  if (holdsCa(current, ca)) return false;
  const body = clusterCaConfigMap(o.namespace, ca);
  if (current) {
    await o.core.replaceNamespacedConfigMap({
      name: CLUSTER_CA_CONFIGMAP,
      namespace: o.namespace,
      body: { ...body, metadata: { ...body.metadata, resourceVersion: current.metadata?.resourceVersion } },
    });
  } else {
    try {
      await o.core.createNamespacedConfigMap({ namespace: o.namespace, body });
    } catch (e) {
      // Another step (or replica) wrote it first: the next step compares again.
      if (e instanceof ApiException && e.code === 409) return false;
      throw e;
    }
  }
  o.log.info('published the cluster CA', {
    configMap: `${o.namespace}/${CLUSTER_CA_CONFIGMAP}`,
    caHash: ca.caHash,
    through: serverAddress,
  });
  return true;
}
