import { DotmeshClient } from '@dotmesh/rpc/client';
import type { CoreV1Api } from '@kubernetes/client-node';
import { ADMIN_API_KEY_KEY, ADMIN_SECRET, SERVER_PORT } from './server-pod.ts';

/**
 * A client of one server of the cluster (its node address, the HTTP API on the host network)
 * as `admin`, with the API key of the user's Secret `dotmesh`: how the operator asks the cluster
 * for join tokens and for its CA, and removes nodes that left.
 */
export async function adminClient(
  o: { readonly core: CoreV1Api; readonly namespace: string },
  serverAddress: string,
  timeoutMs = 30_000,
): Promise<DotmeshClient> {
  const admin = await o.core.readNamespacedSecret({ name: ADMIN_SECRET, namespace: o.namespace });
  const apiKey = Buffer.from(admin.data?.[ADMIN_API_KEY_KEY] ?? '', 'base64')
    .toString('utf8')
    .trim();
  if (apiKey === '') throw new Error(`the Secret ${o.namespace}/${ADMIN_SECRET} has no ${ADMIN_API_KEY_KEY}`);
  return new DotmeshClient({ url: `http://${serverAddress}:${SERVER_PORT}/rpc`, user: 'admin', apiKey, timeoutMs });
}
