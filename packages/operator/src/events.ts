import type { CoreV1Api, V1ObjectMeta } from '@kubernetes/client-node';

/**
 * Records an Event on an object of the operator's namespace (`kind` with its metadata), as the
 * operator's component and instance: what `kubectl get events` and `kubectl describe` show
 * users. `warnOn` for problems (ConfigMap values, pool PVCs, refused node removals), `eventOn`
 * with `Normal` for what it did (a node removed from the Dotmesh cluster, a DotTransfer
 * started); `apiVersion` is the object's (a DotTransfer's: dotmesh.io/v1alpha1).
 */
export interface EventSource {
  readonly core: CoreV1Api;
  readonly namespace: string;
  readonly instance: string;
}

export async function eventOn(
  o: EventSource,
  kind: string,
  object: V1ObjectMeta,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
  apiVersion = 'v1',
): Promise<void> {
  const now = new Date();
  await o.core.createNamespacedEvent({
    namespace: o.namespace,
    body: {
      metadata: { generateName: `${object.name}.`, namespace: o.namespace },
      involvedObject: {
        apiVersion,
        kind,
        namespace: o.namespace,
        name: object.name!,
        uid: object.uid,
        resourceVersion: object.resourceVersion,
      },
      type,
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

export function warnOn(o: EventSource, kind: string, object: V1ObjectMeta, reason: string, message: string): Promise<void> {
  return eventOn(o, kind, object, 'Warning', reason, message);
}
