import { ApiException, type PolicyV1Api, type V1PodDisruptionBudget } from '@kubernetes/client-node';
import type { Logger } from './logger.ts';
import { ROLE_LABEL, SERVER_ROLE } from './server-pod.ts';

/**
 * The server pods' PodDisruptionBudget `dotmesh-server`: an eviction (`kubectl drain`) of a
 * server pod is allowed only while at least floor(0.75 × N) of them stay Ready, the same rule
 * the operator's own replacements follow (plan.ts). The operator keeps it, not the manifest:
 * the server pods are not a Deployment's or StatefulSet's, and for such pods Kubernetes takes
 * only an integer `minAvailable` (no percentage, no maxUnavailable), which depends on how many
 * nodes the ConfigMap selects.
 */
export const SERVER_PDB_NAME = 'dotmesh-server';

export function serverDisruptionBudget(namespace: string, minAvailable: number): V1PodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: SERVER_PDB_NAME, namespace, labels: { [ROLE_LABEL]: SERVER_ROLE } },
    spec: { minAvailable, selector: { matchLabels: { [ROLE_LABEL]: SERVER_ROLE } } },
  };
}

/** Makes the budget, or sets its minAvailable when it differs. True when it wrote. */
export async function ensureServerDisruptionBudget(
  o: { readonly policy: PolicyV1Api; readonly namespace: string; readonly log: Logger },
  minAvailable: number,
): Promise<boolean> {
  const want = serverDisruptionBudget(o.namespace, minAvailable);
  let have: V1PodDisruptionBudget | undefined;
  try {
    have = await o.policy.readNamespacedPodDisruptionBudget({ name: SERVER_PDB_NAME, namespace: o.namespace });
  } catch (e) {
    if (!(e instanceof ApiException && e.code === 404)) throw e;
  }
  if (!have) {
    await o.policy.createNamespacedPodDisruptionBudget({ namespace: o.namespace, body: want });
  } else if (have.spec?.minAvailable !== minAvailable) {
    await o.policy.replaceNamespacedPodDisruptionBudget({
      name: SERVER_PDB_NAME,
      namespace: o.namespace,
      body: { ...have, spec: { ...have.spec, ...want.spec } },
    });
  } else return false;
  o.log.info('set the server pods’ disruption budget', { pdb: `${o.namespace}/${SERVER_PDB_NAME}`, minAvailable });
  return true;
}
