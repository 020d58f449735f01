import {
  DotmeshError,
  formatDotName,
  isRetiredBranchName,
  MASTER_BRANCH,
  normalizeBranch,
  validateFsId,
  validateName,
} from '@dotmesh/core';
import type { DotmeshVolume, MethodName, ParamsOf, ResultOf } from '@dotmesh/rpc';
import type { Store } from '@dotmesh/store';
import type { TransferEngine } from '@dotmesh/transfer';
import type { Authenticator } from '../auth/authenticator.ts';
import { safeUser, type UserService } from '../auth/users.ts';
import type { DurabilitySettings } from '../cluster/durability.ts';
import type { HandoffDeps } from '../cluster/handoff.ts';
import type { JoinTokens } from '../cluster/join-tokens.ts';
import type { PinnedBranches } from '../cluster/pinned.ts';
import { replicationLatency } from '../cluster/replication-lag.ts';
import type { SyncCommitDeps } from '../cluster/sync-commit.ts';
import type { ClusterView } from '../cluster/view.ts';
import { createBranch } from '../dots/branch.ts';
import { type Caller, canAccess, isAdmin } from '../dots/caller.ts';
import type { DotCatalog } from '../dots/catalog.ts';
import type { ContainerInfo } from '../dots/containers.ts';
import type { DotContext } from '../dots/context.ts';
import { createDot, deleteDot } from '../dots/create-delete.ts';
import { type ContainerPaths, procure } from '../dots/procure.ts';
import { resolveBranch } from '../dots/resolve.ts';
import { rollbackBranch } from '../dots/rollback.ts';
import type { SizeTracker } from '../dots/sizes.ts';
import { switchContainers } from '../dots/switch-containers.ts';
import { commitItems, requireVisibleFs } from '../dots/views.ts';
import type { EtcdMemberControl } from '../etcd/member-control.ts';
import type { PoolControl } from '../pool/pool-grow.ts';
import { backupHandlers } from './backup-handlers.ts';
import { capacityHandlers } from './capacity-handlers.ts';
import { clusterHandlers } from './cluster-handlers.ts';
import { diffHandlers } from './diff-handlers.ts';
import { durabilityHandlers } from './durability-handlers.ts';
import { type JoinPoint, joinTokenHandlers } from './join-token-handlers.ts';
import { pinnedHandlers } from './pinned-handlers.ts';
import { publicationHandlers } from './publication-handlers.ts';
import { transferHandlers } from './transfer-handlers.ts';
import { ownerForNewDot, requireUser, userHandlers } from './user-handlers.ts';
import { volumeHandlers } from './volume-handlers.ts';

export interface HandlerDeps {
  readonly ctx: DotContext;
  readonly sizes: SizeTracker;
  readonly users: UserService;
  readonly auth: Authenticator;
  readonly paths: ContainerPaths;
  readonly version: string;
  readonly internalState: () => Record<string, string>;
  /** The cluster store (DumpEtcd/RestoreEtcd). */
  readonly store: Store;
  /** The pool device, when the server may grow it (GrowPool). */
  readonly pool?: PoolControl;
  readonly transfers: TransferEngine<Caller>;
  readonly catalog: DotCatalog;
  readonly durability: DurabilitySettings;
  /** Branches pinned to their master node (no automatic failover). */
  readonly pinned: PinnedBranches;
  /** How a Commit on a `sync` branch waits for another node. */
  readonly syncCommit: SyncCommitDeps;
  readonly view: ClusterView;
  /** On a cluster of several nodes: handoffs (MoveBranch), and taking a branch over (Procure). */
  readonly handoff?: HandoffDeps;
  readonly takeOver?: (caller: Caller, fsId: string) => Promise<void>;
  /** Join tokens, and where hosts join through this node (none on a single node). */
  readonly joinTokens: JoinTokens;
  readonly joinPoint: () => JoinPoint | undefined;
  /** The managed etcd's members (absent: the cluster's etcd is not Dotmesh's). */
  readonly etcdMembers?: EtcdMemberControl;
}

export type Handler<M extends MethodName> = (caller: Caller, params: ParamsOf<M>) => Promise<ResultOf<M>>;
export type HandlerTable = { [M in MethodName]: Handler<M> };

/**
 * One handler per method: decode-validated params in, the original's result shape out.
 * Authorisation beyond the method table's admin/password flags happens here (dot visibility).
 */
export function createHandlers(deps: HandlerDeps): HandlerTable {
  const { ctx, sizes, users } = deps;

  const { catalog } = deps;
  const listMasters = async (
    caller: Caller,
  ): Promise<Array<{ ns: string; name: string; volume: DotmeshVolume; fsId: string }>> => {
    const s = await sizes.fresh();
    return catalog
      .visibleDots(caller)
      .map((d) => ({ ns: d.namespace, name: d.name, fsId: d.id, volume: catalog.volume(d, d.id, s) }));
  };

  return {
    Ping: async () => true,
    Version: async () => ({
      installed_version: deps.version,
      current_version: deps.version,
      current_release_date: 0,
      current_download_url: '',
      current_changelog_url: '',
      project_website: 'https://github.com/dotmesh-io/dotmesh',
      outdated: false,
    }),
    Config: async () => ({}),
    CurrentUser: async (caller) => safeUser(await requireUser(users, caller)),
    AuthenticatedUser: async (caller) => safeUser(await requireUser(users, caller)),
    List: async (caller) => {
      const out: Record<string, Record<string, DotmeshVolume>> = {};
      for (const m of await listMasters(caller)) {
        const ns = out[m.ns] ?? {};
        ns[m.name] = m.volume;
        out[m.ns] = ns;
      }
      return out;
    },
    ListWithContainers: async (caller) => {
      const out: ResultOf<'ListWithContainers'> = {};
      const using = await ctx.containers.snapshot();
      for (const m of await listMasters(caller)) {
        const ns = out[m.ns] ?? {};
        ns[m.name] = { Volume: m.volume, Containers: dotContainers(ctx, catalog, using, m.fsId) };
        out[m.ns] = ns;
      }
      return out;
    },
    AllDotsAndBranches: async (caller) => {
      const s = await sizes.fresh();
      const dots = [];
      for (const d of catalog.visibleDots(caller)) {
        const others = [...catalog.branches(d.id).entries()]
          .filter(([name]) => name !== MASTER_BRANCH && !isRetiredBranchName(name))
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([, fsId]) => catalog.volume(d, fsId, s));
        const owner = await users.byId(d.ownerId);
        const collaborators = [];
        for (const id of d.collaboratorIds) {
          const u = await users.byId(id);
          if (u) collaborators.push(safeUser(u));
        }
        dots.push({
          MasterBranch: catalog.volume(d, d.id, s),
          OtherBranches: others.length > 0 ? others : null,
          Owner: owner ? safeUser(owner) : { Id: d.ownerId, Name: d.namespace, Email: '', EmailHash: '', Metadata: {} },
          Collaborators: collaborators,
          ForkParentId: d.forkParentId,
          ForkParentSnapshotId: d.forkParentSnapshotId,
        });
      }
      const servers = deps.view.nodes().map((n) => ({ Id: n.id, Addresses: [...n.addresses] }));
      return { Dots: dots, Servers: servers.length > 0 ? servers : [{ Id: ctx.nodeId, Addresses: [] }] };
    },
    // Every node's copy (ServerStates/ServerStatuses), as List gives them: dm dot show's replication lines.
    // Also for a branch this node holds no copy of whose master is gone (router.ts): from the view.
    Get: async (caller, fsId) => {
      const id = validateFsId(fsId);
      const dotId = ctx.index.branches.get(id)?.label.dotId ?? deps.view.branch(id)?.dotId;
      const dot = dotId === undefined ? undefined : deps.view.dot(dotId);
      if (!dot || !canAccess(caller, dot)) {
        throw new DotmeshError('DOT_NOT_FOUND', `No such filesystem id '${id}'`, { hint: 'look the id up with Lookup' });
      }
      return catalog.volume(dot, id, await sizes.fresh());
    },
    Lookup: async (caller, p) => catalog.requireBranchId(caller, p.Namespace, p.Name, p.Branch),
    Exists: async (caller, p) => {
      validateName('namespace', p.Namespace);
      validateName('dot', p.Name);
      const b = normalizeBranch(p.Branch);
      const dot = catalog.findDot(caller, p.Namespace, p.Name);
      if (!dot) return '';
      return catalog.branches(dot.id).get(b) ?? '';
    },
    CheckNameIsValid: async (_caller, p) => {
      try {
        validateName('namespace', p.Namespace);
        validateName('dot', p.Name);
        normalizeBranch(p.Branch);
        return '';
      } catch (e) {
        if (e instanceof DotmeshError) return e.message;
        throw e;
      }
    },
    Create: async (caller, p) => {
      await createDot(ctx, caller, p.Namespace, p.Name, () => ownerForNewDot(users, caller, p.Namespace));
      return true;
    },
    Delete: async (caller, p) => {
      await deleteDot(ctx, caller, p.Namespace, p.Name, deps.paths);
      return true;
    },
    Branches: async (caller, p) =>
      [...catalog.branches(catalog.requireDot(caller, p.Namespace, p.Name).id).keys()]
        .filter((b) => b !== MASTER_BRANCH && !isRetiredBranchName(b))
        .sort(),
    Branch: async (caller, p) => {
      await createBranch(ctx, caller, {
        namespace: p.Namespace,
        name: p.Name,
        sourceBranch: p.SourceBranch,
        newBranchName: p.NewBranchName,
        sourceCommitId: p.SourceCommitId,
      });
      return true;
    },
    Commits: async (caller, p) => commitItems(ctx, resolveBranch(ctx, caller, p.Namespace, p.Name, p.Branch).fsId),
    CommitsById: async (caller, fsId) => commitItems(ctx, requireVisibleFs(ctx, caller, fsId)),
    Rollback: async (caller, p) => {
      await rollbackBranch(ctx, caller, { namespace: p.Namespace, name: p.Name, branch: p.Branch, commitId: p.SnapshotId });
      return true;
    },
    Procure: async (caller, p) => {
      const takeOver = deps.takeOver;
      return procure(ctx, deps.paths, caller, {
        namespace: p.Namespace,
        name: p.Name,
        subdot: p.Subdot,
        ownerOf: (ns) => ownerForNewDot(users, caller, ns),
        ...(takeOver ? { takeOver: (fsId: string) => takeOver(caller, fsId) } : {}),
      });
    },
    SwitchContainers: async (caller, p) => {
      await switchContainers(ctx, deps.paths, caller, {
        namespace: p.Namespace,
        name: p.Name,
        branch: p.NewBranchName,
        stopOthers: p.StopOthers === true,
      });
      return true;
    },
    // On the master: the containers using the branch here. A branch whose master is gone (router.ts):
    // the containers its master last advertised.
    Containers: async (caller, p) => {
      const dot = catalog.findDot(caller, p.Namespace, p.Name);
      const fsId = dot ? catalog.branches(dot.id).get(normalizeBranch(p.Branch)) : undefined;
      if (fsId !== undefined && catalog.isGone(catalog.masterNodeOf(fsId))) {
        return deps.view.containersOf(fsId).map((c) => ({ Name: c.Name, Id: c.Id }));
      }
      // Anything else (errors included) as on any master.
      return ctx.containers.containersFor(resolveBranch(ctx, caller, p.Namespace, p.Name, p.Branch).fsId);
    },
    ContainersById: async (caller, fsId) => ctx.containers.containersFor(requireVisibleFs(ctx, caller, fsId)),
    GetReplicationLatencyForBranch: async (caller, p) => {
      const fsId = catalog.requireBranchId(caller, p.Namespace, p.Name, p.Branch);
      return replicationLatency(deps.view, catalog.masterNodeOf(fsId), fsId);
    },
    SetDebugFlag: async (_caller, p) => ctx.failpoints.set(p.FlagName, p.FlagValue),
    DumpInternalState: async (caller, filter) => {
      if (!isAdmin(caller)) throw new DotmeshError('NOT_ADMIN', `Userid ${caller.id} is not admin user`);
      const all = deps.internalState();
      return Object.fromEntries(Object.entries(all).filter(([k]) => filter === '' || k.includes(filter)));
    },
    ...durabilityHandlers({ ctx, catalog, durability: deps.durability, syncCommit: deps.syncCommit }),
    ...pinnedHandlers({ ctx, catalog, pinned: deps.pinned }),
    ...capacityHandlers(ctx, deps.pool),
    ...clusterHandlers({ ctx, store: deps.store, ...(deps.handoff ? { handoff: deps.handoff } : {}) }),
    ...volumeHandlers(ctx),
    ...publicationHandlers({ ctx, ...(deps.handoff ? { handoff: deps.handoff } : {}) }),
    ...diffHandlers(ctx),
    ...joinTokenHandlers({ tokens: deps.joinTokens, joinPoint: deps.joinPoint, etcdMembers: deps.etcdMembers }),
    ...backupHandlers({ ctx, store: deps.store, users, auth: deps.auth }),
    ...userHandlers({ ctx, users, auth: deps.auth }),
    ...transferHandlers({ ctx, transfers: deps.transfers, ownerOf: (caller, ns) => ownerForNewDot(users, caller, ns) }),
  };
}

/**
 * Containers using any branch of a dot (`dm list` shows them whichever branch they follow): on
 * this node for the branches it masters, as their master node advertises them for the others.
 */
function dotContainers(
  ctx: DotContext,
  catalog: DotCatalog,
  using: (fsId: string) => ContainerInfo[],
  dotId: string,
): ContainerInfo[] {
  const byId = new Map<string, ContainerInfo>();
  for (const fsId of catalog.branches(dotId).values()) {
    const here = ctx.masterNodes.isMine(fsId) || catalog.masterNodeOf(fsId) === '';
    for (const c of here ? using(fsId) : ctx.view.containersOf(fsId)) byId.set(c.Id, { Name: c.Name, Id: c.Id });
  }
  return [...byId.values()].sort((a, b) => a.Name.localeCompare(b.Name));
}

/**
 * Key/value dump for DumpInternalState: this node's id, the dots with a mutation whose store
 * write awaits settling (`mutations.unsettled`), its index (names, ids and counts) and
 * its view of the cluster — each live node (`nodes.<id>.*`) and each branch's master node
 * (`masters.<fsId>`) — never secrets.
 */
export function dumpIndex(ctx: DotContext): Record<string, string> {
  const out: Record<string, string> = {
    myNodeId: ctx.nodeId,
    'queues.active': String(ctx.mutations.activeQueues),
    'mutations.unsettled': ctx.mutations.unsettled.join(','),
  };
  for (const d of ctx.index.dots.values()) {
    out[`dots.${d.id}.name`] = formatDotName(d.info);
    out[`dots.${d.id}.owner`] = d.info.ownerId;
    for (const [branch, fsId] of d.branches) {
      const b = ctx.index.branches.get(fsId);
      out[`dots.${d.id}.branches.${branch}.id`] = fsId;
      out[`dots.${d.id}.branches.${branch}.commits`] = String(b?.commits.length ?? 0);
      out[`dots.${d.id}.branches.${branch}.hidden`] = String(b?.label.hiddenCommits.length ?? 0);
    }
  }
  for (const n of ctx.view.nodes()) {
    out[`nodes.${n.id}.addresses`] = n.addresses.join(',');
    out[`nodes.${n.id}.clusterPort`] = String(n.clusterPort);
  }
  for (const dot of ctx.view.dots()) {
    for (const fsId of ctx.view.branchesOf(dot.id).values()) {
      const master = ctx.masterNodes.get(fsId);
      if (master) out[`masters.${fsId}`] = master.nodeId;
    }
  }
  return out;
}
