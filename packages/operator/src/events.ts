import type { CoreV1Api, V1ObjectMeta } from '@kubernetes/client-node';

/**
 * Records a warning Event on an object of the operator's namespace (`kind` with its metadata),
 * as the operator's component and instance: what `kubectl get events` and `kubectl describe`
 * show users.
 */
export async function warnOn(
  o: { readonly core: CoreV1Api; readonly namespace: string; readonly instance: string },
  kind: string,
  object: V1ObjectMeta,
  reason: string,
  message: string,
): Promise<void> {
  const now = new Date();
  await o.core.createNamespacedEvent({
    namespace: o.namespace,
    body: {
      metadata: { generateName: `${object.name}.`, namespace: o.namespace },
      involvedObject: {
        apiVersion: 'v1',
        kind,
        namespace: o.namespace,
        name: object.name!,
        uid: object.uid,
        resourceVersion: object.resourceVersion,
      },
      type: 'Warning',
      reason,
      message,
      source: { component: 'dotmesh-operator' },
      reportingComponent: 'dotmesh.io/operator',
      reportingInstance: o.instance,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    },
  });
}
