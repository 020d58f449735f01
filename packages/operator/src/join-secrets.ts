import type { JoinTokenCreated } from '@dotmesh/rpc';
import type { DotmeshClient } from '@dotmesh/rpc/client';
import { ApiException, type CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import { adminClient } from './admin-client.ts';
import type { Logger } from './logger.ts';
import { JOIN_SECRET_LABEL, joinSecretName } from './server-pod.ts';

/**
 * Join Secrets: for each node that has no server pod yet (the cluster exists), a single-use join
 * token made by a serving node of the cluster that holds its CA key (`findJoinIssuer`;
 * `CreateJoinToken`, as the admin whose API key is
 * in the user's Secret `dotmesh`), kept in the Secret `dotmesh-join-<node>` (keys `token`,
 * `address`, `ca-hash`) that the node's pod mounts. The token is good for one join and an hour.
 */
export const JOIN_TOKEN_TTL_SECONDS = 3600;

type Api = { readonly core: CoreV1Api; readonly namespace: string; readonly log: Logger };

/** What a serving node answered to ClusterCa (`holdsCaKey` undefined: a server too old to say). */
export interface IssuerAnswer {
  readonly address: string;
  readonly holdsCaKey: boolean | undefined;
}

/**
 * The node to make join tokens through: a token names its maker's address as the join
 * address, and only a node holding the cluster CA's key lets a host join (the cluster's first
 * node, or one the key was copied to). The first that holds it; else the first that does not
 * say (a server older than ClusterCa's HoldsCaKey); else the first that answered — while the
 * CA holder itself is down, a node whose pool already joined still needs its Secret to get a
 * pod (it does not read it), and the CA holder is such a node: without one, it never comes back.
 */
export function chooseJoinIssuer(answers: readonly IssuerAnswer[]): { address: string; holdsCaKey: boolean } | undefined {
  const chosen = answers.find((a) => a.holdsCaKey === true) ?? answers.find((a) => a.holdsCaKey === undefined) ?? answers[0];
  return chosen ? { address: chosen.address, holdsCaKey: chosen.holdsCaKey !== false } : undefined;
}

/** Asks the serving nodes at `addresses` (ClusterCa, as admin) and chooses with chooseJoinIssuer. */
export async function findJoinIssuer(
  o: Api,
  addresses: readonly string[],
): Promise<{ address: string; holdsCaKey: boolean } | undefined> {
  const answers: IssuerAnswer[] = [];
  for (const address of addresses) {
    const answer = await adminClient(o, address)
      .then((c) => c.call('ClusterCa', {}))
      .then(
        (r) => ({ address, holdsCaKey: (r as { HoldsCaKey?: boolean }).HoldsCaKey }),
        (e: unknown) => {
          o.log.warn('could not ask a server whether it holds the cluster CA key', {
            address,
            error: String((e as Error)?.message ?? e),
          });
          return undefined;
        },
      );
    if (answer?.holdsCaKey === true) return { address, holdsCaKey: true };
    if (answer) answers.push(answer);
  }
  return chooseJoinIssuer(answers);
}

/** Which token a join Secret holds, and until when (RFC 3339). */
export const JOIN_TOKEN_ID_ANNOTATION = 'dotmesh.io/join-token-id';
export const JOIN_TOKEN_EXPIRES_ANNOTATION = 'dotmesh.io/join-token-expires';

function secretBody(namespace: string, node: string, made: JoinTokenCreated, resourceVersion?: string): V1Secret {
  return {
    metadata: {
      name: joinSecretName(node),
      namespace,
      labels: { [JOIN_SECRET_LABEL]: node },
      annotations: { [JOIN_TOKEN_ID_ANNOTATION]: made.Id, [JOIN_TOKEN_EXPIRES_ANNOTATION]: made.Expires },
      ...(resourceVersion ? { resourceVersion } : {}),
    },
    type: 'Opaque',
    stringData: { token: made.Token, address: made.JoinAddress, 'ca-hash': made.CaHash },
  };
}

function makeToken(client: DotmeshClient, node: string): Promise<JoinTokenCreated> {
  return client.call('CreateJoinToken', {
    TtlSeconds: JOIN_TOKEN_TTL_SECONDS,
    Uses: 1,
    Description: `Kubernetes node ${node} (dotmesh-operator)`,
  });
}

export async function makeJoinSecrets(o: Api, serverAddress: string, nodes: readonly string[]): Promise<void> {
  const client = await adminClient(o, serverAddress);
  for (const node of nodes) {
    const made = await makeToken(client, node);
    try {
      await o.core.createNamespacedSecret({ namespace: o.namespace, body: secretBody(o.namespace, node, made) });
      o.log.info('made a join Secret', { node, secret: joinSecretName(node), through: serverAddress, tokenId: made.Id });
    } catch (e) {
      await client.call('DeleteJoinToken', { Id: made.Id }).catch(() => {});
      if (!(e instanceof ApiException && e.code === 409)) throw e;
    }
  }
}

/** The node a join Secret is for (its label). */
export function joinSecretNode(secret: V1Secret): string {
  return secret.metadata?.labels?.[JOIN_SECRET_LABEL] ?? '';
}

/**
 * When a join Secret's token expires, in ms since the epoch: its annotation; a Secret without
 * one (made by an older operator) expires the token TTL after its creation.
 */
export function joinTokenExpiry(secret: V1Secret): number {
  const annotated = Date.parse(secret.metadata?.annotations?.[JOIN_TOKEN_EXPIRES_ANNOTATION] ?? '');
  if (Number.isFinite(annotated)) return annotated;
  const created = secret.metadata?.creationTimestamp ? new Date(secret.metadata.creationTimestamp).getTime() : Number.NaN;
  return Number.isFinite(created) ? created + JOIN_TOKEN_TTL_SECONDS * 1000 : 0;
}

/**
 * The join Secrets to renew before server pods are made for `creating` (nodes): those whose
 * token expires within `marginMs` of `now` (a pod made with it now could be refused its join).
 */
export function staleJoinSecrets(
  secrets: readonly V1Secret[],
  creating: readonly string[],
  now: number,
  marginMs = 120_000,
): V1Secret[] {
  return secrets.filter((s) => creating.includes(joinSecretNode(s)) && joinTokenExpiry(s) <= now + marginMs);
}

/** The join Secrets of nodes that no longer exist. */
export function orphanedJoinSecrets(secrets: readonly V1Secret[], existingNodes: ReadonlySet<string>): V1Secret[] {
  return secrets.filter((s) => !existingNodes.has(joinSecretNode(s)));
}

/**
 * Puts a fresh token (through `serverAddress`) in each of `secrets`, in place (the pods name the
 * Secret, not its content); the old token is revoked. A Secret changed meanwhile is left to the
 * next step (409).
 */
export async function renewJoinSecrets(o: Api, serverAddress: string, secrets: readonly V1Secret[]): Promise<void> {
  const client = await adminClient(o, serverAddress);
  for (const secret of secrets) {
    const node = joinSecretNode(secret);
    const made = await makeToken(client, node);
    try {
      await o.core.replaceNamespacedSecret({
        name: joinSecretName(node),
        namespace: o.namespace,
        body: secretBody(o.namespace, node, made, secret.metadata?.resourceVersion),
      });
      o.log.info('renewed a join Secret (its token had expired)', { node, through: serverAddress, tokenId: made.Id });
    } catch (e) {
      await client.call('DeleteJoinToken', { Id: made.Id }).catch(() => {});
      if (!(e instanceof ApiException && e.code === 409)) throw e;
      continue;
    }
    await revoke(client, secret);
  }
}

/** Deletes join Secrets (of nodes that are gone) and revokes their tokens (through `serverAddress`, when there is one). */
export async function deleteJoinSecrets(o: Api, serverAddress: string | undefined, secrets: readonly V1Secret[]): Promise<void> {
  const client = serverAddress ? await adminClient(o, serverAddress) : undefined;
  for (const secret of secrets) {
    const name = secret.metadata?.name ?? '';
    await o.core.deleteNamespacedSecret({ name, namespace: o.namespace }).catch((e: unknown) => {
      if (!(e instanceof ApiException && e.code === 404)) throw e;
    });
    o.log.info('deleted the join Secret of a node that is gone', { node: joinSecretNode(secret), secret: name });
    if (client) await revoke(client, secret);
  }
}

/** Revokes a Secret's token (an unknown one, used or expired, is fine). */
async function revoke(client: DotmeshClient, secret: V1Secret): Promise<void> {
  const id = secret.metadata?.annotations?.[JOIN_TOKEN_ID_ANNOTATION];
  if (id) await client.call('DeleteJoinToken', { Id: id }).catch(() => {});
}
