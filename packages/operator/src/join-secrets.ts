import { ApiException, type CoreV1Api } from '@kubernetes/client-node';
import { adminClient } from './admin-client.ts';
import type { Logger } from './logger.ts';
import { JOIN_SECRET_LABEL, joinSecretName } from './server-pod.ts';

/**
 * Join Secrets: for each node that has no server pod yet (the cluster exists), a single-use join
 * token made by a serving node of the cluster (`CreateJoinToken`, as the admin whose API key is
 * in the user's Secret `dotmesh`), kept in the Secret `dotmesh-join-<node>` (keys `token`,
 * `address`, `ca-hash`) that the node's pod mounts. The token is good for one join and an hour.
 */
export const JOIN_TOKEN_TTL_SECONDS = 3600;

export async function makeJoinSecrets(
  o: { readonly core: CoreV1Api; readonly namespace: string; readonly log: Logger },
  serverAddress: string,
  nodes: readonly string[],
): Promise<void> {
  const client = await adminClient(o, serverAddress);
  for (const node of nodes) {
    const made = await client.call('CreateJoinToken', {
      TtlSeconds: JOIN_TOKEN_TTL_SECONDS,
      Uses: 1,
      Description: `Kubernetes node ${node} (dotmesh-operator)`,
    });
    try {
      await o.core.createNamespacedSecret({
        namespace: o.namespace,
        body: {
          metadata: { name: joinSecretName(node), namespace: o.namespace, labels: { [JOIN_SECRET_LABEL]: node } },
          type: 'Opaque',
          stringData: { token: made.Token, address: made.JoinAddress, 'ca-hash': made.CaHash },
        },
      });
      o.log.info('made a join Secret', { node, secret: joinSecretName(node), through: serverAddress, tokenId: made.Id });
    } catch (e) {
      await client.call('DeleteJoinToken', { Id: made.Id }).catch(() => {});
      if (!(e instanceof ApiException && e.code === 409)) throw e;
    }
  }
}
