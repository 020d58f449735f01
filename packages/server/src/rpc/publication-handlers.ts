import { join } from 'node:path';
import { DEFAULT_SUBDOT, DotmeshError, ROOT_SUBDOT, validateFsId, validateName } from '@dotmesh/core';
import { type HandoffDeps, handOff } from '../cluster/handoff.ts';
import type { Caller } from '../dots/caller.ts';
import { canAccess } from '../dots/caller.ts';
import type { DotContext } from '../dots/context.ts';
import type { HandlerTable } from './handlers.ts';

/** Longest volume id or target path accepted (the CSI spec's ids are at most 128 bytes). */
const MAX_VOLUME_BYTES = 1024;
const MAX_TARGET_BYTES = 4096;

/**
 * Kubernetes uses of branches (the CSI driver): AttachBranch moves a branch to the node a
 * volume is attached to and records the attachment; PublishBranch records a mount on this node
 * and returns the host path to bind; DetachBranch and UnpublishBranch remove them;
 * BranchPublications lists them; NodeUses lists every use on this node (admin: what a server
 * pod's preStop waits for, docs/kubernetes.md "Upgrades and drain"). While a branch has uses it is not moved to another node,
 * rolled back or deleted (IN_USE). Owner, collaborator or admin of the dot.
 */
export function publicationHandlers(deps: {
  readonly ctx: DotContext;
  /** Absent on a single node. */
  readonly handoff?: HandoffDeps;
}): Pick<
  HandlerTable,
  'AttachBranch' | 'DetachBranch' | 'PublishBranch' | 'UnpublishBranch' | 'BranchPublications' | 'NodeUses'
> {
  const { ctx } = deps;
  return {
    AttachBranch: async (caller, p) => {
      const fsId = visibleBranch(ctx, caller, p.FilesystemId);
      const volume = checkText('Volume', p.Volume, MAX_VOLUME_BYTES);
      const node = p.Node === '' ? ctx.nodeId : p.Node;
      if (node !== ctx.nodeId && !ctx.view.node(node)) {
        throw new DotmeshError('NODE_NOT_FOUND', `${JSON.stringify(node.slice(0, 64))} is not a live node of this cluster`, {
          hint: `the live nodes: ${
            ctx.view
              .nodes()
              .map((n) => n.id)
              .join(', ') || ctx.nodeId
          }`,
          data: { node: node.slice(0, 64) },
        });
      }
      const what = `cannot attach ${volume} to node ${node}`;
      const added = await ctx.publications.add(
        fsId,
        node,
        { kind: 'attach', volume, target: '', read_only: p.ReadOnly, subdot: '' },
        what,
      );
      try {
        if (node === ctx.nodeId) return { Master: node, Revision: ctx.masterNodes.requireMine(fsId, 'attach it').revision };
        if (!deps.handoff)
          throw new DotmeshError('UNSUPPORTED', 'this server is a single node: there is no other node to attach to');
        return { Master: node, Revision: await handOff(deps.handoff, fsId, node) };
      } catch (e) {
        // The attachment this call added goes with the move that failed (an older one stays).
        if (added) await ctx.publications.remove(fsId, (u) => u.kind === 'attach' && u.volume === volume);
        throw e;
      }
    },
    DetachBranch: async (caller, p) => {
      const fsId = visibleBranch(ctx, caller, p.FilesystemId, { mayBeGone: true });
      const volume = checkText('Volume', p.Volume, MAX_VOLUME_BYTES);
      await ctx.publications.remove(
        fsId,
        (u, node) => u.kind === 'attach' && u.volume === volume && (p.Node === '' || node === p.Node),
      );
      return true;
    },
    PublishBranch: async (caller, p) => {
      const fsId = visibleBranch(ctx, caller, p.FilesystemId);
      const volume = checkText('Volume', p.Volume, MAX_VOLUME_BYTES);
      const target = checkTarget(p.Target);
      const subdot = p.Subdot === '' ? DEFAULT_SUBDOT : validateName('subdot', p.Subdot);
      const what = `cannot mount ${volume} at ${target} on node ${ctx.nodeId}`;
      const added = await ctx.publications.add(
        fsId,
        ctx.nodeId,
        { kind: 'mount', volume, target, read_only: p.ReadOnly, subdot },
        what,
      );
      // Checked after the use is recorded: a handoff fences on the record, so the branch cannot
      // leave this node from here on.
      if (!ctx.masterNodes.isMine(fsId) || !ctx.index.branches.has(fsId)) {
        if (added) await ctx.publications.remove(fsId, (u) => u.kind === 'mount' && u.target === target);
        const master = ctx.masterNodes.get(fsId)?.nodeId ?? '';
        throw new DotmeshError('NOT_MASTER', `${what}: node ${master || '(none)'} masters the branch`, {
          hint: 'attach the volume to this node first (AttachBranch, MoveBranch)',
          data: { master },
        });
      }
      if (subdot === ROOT_SUBDOT) return ctx.storage.volumePath(fsId);
      await ctx.storage.ensureDirectory(fsId, subdot);
      return join(ctx.storage.volumePath(fsId), subdot);
    },
    UnpublishBranch: async (caller, p) => {
      const fsId = visibleBranch(ctx, caller, p.FilesystemId, { mayBeGone: true });
      const target = checkTarget(p.Target);
      await ctx.publications.remove(fsId, (u, node) => u.kind === 'mount' && u.target === target && node === ctx.nodeId);
      return true;
    },
    BranchPublications: async (caller, fsId) => {
      const id = visibleBranch(ctx, caller, fsId, { mayBeGone: true });
      const record = ctx.publications.of(id);
      return {
        Node: record?.node_id ?? '',
        Uses: (record?.uses ?? []).map((u) => ({
          Kind: u.kind,
          Volume: u.volume,
          Target: u.target,
          ReadOnly: u.read_only,
          Subdot: u.subdot,
        })),
      };
    },
    NodeUses: async () => ({
      Node: ctx.nodeId,
      Uses: ctx.publications.onNode(ctx.nodeId).map(({ fsId, use }) => ({
        FilesystemId: fsId,
        Kind: use.kind,
        Volume: use.volume,
        Target: use.target,
      })),
    }),
  };
}

/**
 * A branch id the caller may use, from the cluster's facts. `mayBeGone`: a deleted branch is
 * accepted too (removing a use of it is allowed; its record went with it).
 */
function visibleBranch(ctx: Pick<DotContext, 'view'>, caller: Caller, raw: unknown, o: { mayBeGone?: boolean } = {}): string {
  const fsId = validateFsId(raw);
  const branch = ctx.view.branch(fsId);
  const dot = branch ? ctx.view.dot(branch.dotId) : undefined;
  if (branch && dot && canAccess(caller, dot)) return fsId;
  if (o.mayBeGone && !branch && ctx.view.isDeleted(fsId)) return fsId;
  throw new DotmeshError('DOT_NOT_FOUND', `No such filesystem id '${fsId}'`, { hint: 'look the id up with Lookup' });
}

function checkText(field: string, value: string, maxBytes: number): string {
  if (value === '' || Buffer.byteLength(value) > maxBytes || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new DotmeshError('INVALID_ARGUMENT', `${field} must be 1 to ${maxBytes} bytes without control characters`);
  }
  return value;
}

function checkTarget(value: string): string {
  const target = checkText('Target', value, MAX_TARGET_BYTES);
  if (!target.startsWith('/') || target.split('/').some((p) => p === '..' || p === '.')) {
    throw new DotmeshError('INVALID_ARGUMENT', 'Target must be an absolute path without "." or ".." segments');
  }
  return target;
}
