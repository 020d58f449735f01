import { DotmeshError, normalizeBranch, validateName } from '@dotmesh/core';
import { METHODS, type MethodName, type MethodRoute } from '@dotmesh/rpc';
import type { Caller } from '../dots/caller.ts';
import type { MasterNodes } from './master-nodes.ts';
import type { NodeClient } from './node-transport.ts';
import type { ClusterView } from './view.ts';

/**
 * Reads this node answers itself when a branch's master node is gone (its lease expired: the
 * branch waits for failover, or for its node when pinned), instead of failing: from the cluster
 * view (Get, Containers) or from this node's copy of the branch (Commits, CommitSizes; only
 * when it holds one). So `dm dot show` and `dm log`, the original client's included, answer.
 */
const FROM_VIEW_WITHOUT_MASTER: ReadonlySet<MethodName> = new Set(['Get', 'Containers']);
const FROM_COPY_WITHOUT_MASTER: ReadonlySet<MethodName> = new Set(['Commits', 'CommitsById', 'CommitSizes']);

/** How many times one call may be passed on (a branch moving while the call travels). */
export const MAX_HOPS = 2;

export const NODE_RPC_PATH = '/node/v1/rpc';
/** The authenticated caller a forwarded call runs as (base64 JSON `{id, name, authMethod}`). */
export const CALLER_HEADER = 'x-dotmesh-caller';
export const HOPS_HEADER = 'x-dotmesh-hops';
/**
 * On the reply to a passed-on call: the store revision the answering node's view had reached
 * once the call was done (its writes included: the mutation path waits for its own write).
 */
export const STORE_REVISION_HEADER = 'x-dotmesh-store-revision';

/**
 * Decides where a call runs (the method table's `route`) and passes it on to the branch's
 * master node when that is another node. The call travels as the client sent it (same body,
 * same id), with the caller this node authenticated — never the caller's credentials — and a
 * hop count; the master's reply, error code, hint and data included, comes back unchanged.
 */
export class CallRouter {
  readonly #view: ClusterView;
  readonly #masterNodes: MasterNodes;
  readonly #client: NodeClient;
  readonly #holdsCopy: (fsId: string) => boolean;

  /** `holdsCopy`: whether this node's pool holds a copy of a branch (its replica, say). */
  constructor(view: ClusterView, masterNodes: MasterNodes, client: NodeClient, holdsCopy: (fsId: string) => boolean) {
    this.#view = view;
    this.#masterNodes = masterNodes;
    this.#client = client;
    this.#holdsCopy = holdsCopy;
  }

  /** The node that must run the call, or undefined for this one. */
  target(method: MethodName, params: unknown): string | undefined {
    const fsId = this.#branchOf((METHODS[method] as { route: MethodRoute }).route, params);
    if (fsId === undefined) return undefined;
    const master = this.#masterNodes.get(fsId);
    if (!master || master.nodeId === this.#masterNodes.nodeId) return undefined;
    if (!this.#view.node(master.nodeId)) {
      if (FROM_VIEW_WITHOUT_MASTER.has(method)) return undefined;
      if (FROM_COPY_WITHOUT_MASTER.has(method) && this.#holdsCopy(fsId)) return undefined;
    }
    return master.nodeId;
  }

  /**
   * Passes the call on; resolves with the reply body the other node sent, once this node's
   * view has caught up with what that node had seen when it answered (read-your-writes through
   * this node; a read that wrote nothing waits for nothing).
   */
  async forward(nodeId: string, body: string, caller: Caller, hops: number): Promise<string> {
    if (hops > MAX_HOPS) {
      throw new DotmeshError('NOT_MASTER', `the branch moved while the call was passed on (${hops} hops)`, {
        hint: 'run it again',
      });
    }
    if (!this.#view.node(nodeId)) {
      throw new DotmeshError(
        'UNAVAILABLE',
        `node ${nodeId}, the master of this branch, is gone (its lease expired): the branch waits for failover to a live node, or for its node if it is pinned`,
        { hint: "run it again in a few seconds; 'dm dot show' says where the branch is", data: { node: nodeId } },
      );
    }
    const res = await this.#client.post(nodeId, NODE_RPC_PATH, body, {
      [CALLER_HEADER]: encodeCaller(caller),
      [HOPS_HEADER]: String(hops),
    });
    if (res.status !== 200 && res.status !== 204) {
      throw new DotmeshError('UNAVAILABLE', `node ${nodeId} answered HTTP ${res.status}: ${res.text.slice(0, 300)}`, {
        data: { node: nodeId },
      });
    }
    // What the other node wrote is in the store before it answered: the caller's next call
    // here (a read of names, a SwitchContainers) must see it. A reply without the revision
    // (a node of an older version) costs a read of the store's revision.
    const revision = Number(res.headers[STORE_REVISION_HEADER]);
    if (Number.isSafeInteger(revision) && revision > 0) await this.#view.caughtUp(revision);
    else await this.#view.caughtUpWithStore();
    return res.text;
  }

  /** The branch a call targets, or undefined (it runs here; a missing dot fails here as usual). */
  #branchOf(route: MethodRoute, params: unknown): string | undefined {
    if (route === 'here') return undefined;
    const p = (typeof params === 'object' && params !== null ? params : {}) as Record<string, unknown>;
    try {
      if ('fsId' in route) {
        const id = route.fsId === null ? params : p[route.fsId];
        return typeof id === 'string' && id !== '' ? id : undefined;
      }
      const namespace = validateName('namespace', p[route.namespace ?? 'Namespace']);
      const name = validateName('dot', p[route.name ?? 'Name']);
      const dot = this.#view.dotByName(namespace, name);
      if (!dot) return undefined;
      const branch = route.branch === null ? 'master' : normalizeBranch(p[route.branch]);
      return this.#view.branchesOf(dot.id).get(branch);
    } catch {
      return undefined;
    }
  }
}

export function encodeCaller(caller: Caller): string {
  return Buffer.from(JSON.stringify({ id: caller.id, name: caller.name, authMethod: caller.authMethod })).toString('base64');
}

/** The caller header of a forwarded call, checked for shape only (the receiver checks the user exists). */
export function decodeCaller(header: string | string[] | undefined): Caller | undefined {
  if (typeof header !== 'string' || header.length > 4096) return undefined;
  try {
    const c = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as Record<string, unknown>;
    if (typeof c.id !== 'string' || typeof c.name !== 'string') return undefined;
    if (c.authMethod !== 'apikey' && c.authMethod !== 'password' && c.authMethod !== 'internal') return undefined;
    return { id: c.id, name: c.name, authMethod: c.authMethod };
  } catch {
    return undefined;
  }
}
