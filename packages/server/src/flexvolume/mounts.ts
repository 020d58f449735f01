import { existsSync } from 'node:fs';
import { readlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DotmeshError, isDotmeshError, ROOT_SUBDOT } from '@dotmesh/core';
import { checkMountRequest, checkUnmountRequest, type FlexMountReply, type FlexUnmountReply } from '@dotmesh/rpc/flexvolume';
import type { Caller } from '../dots/caller.ts';
import type { DotContext } from '../dots/context.ts';
import type { HandlerTable } from '../rpc/handlers.ts';

/** The `Volume` of the uses FlexVolume mounts record: `flexvolume:<namespace>/<name>`. */
const USE_PREFIX = 'flexvolume:';

/** How often a mount retries when its branch moved away between Procure and recording the use. */
const MOUNT_ATTEMPTS = 3;

export interface FlexMountsDeps {
  readonly ctx: Pick<DotContext, 'index' | 'storage' | 'publications' | 'nodeId'>;
  readonly handlers: Pick<HandlerTable, 'Procure' | 'PublishBranch' | 'UnpublishBranch'>;
  /** Who the driver acts as (admin, as the original's pre-authenticated socket). */
  readonly caller: Caller;
}

/**
 * The FlexVolume driver's requests. A mount is Procure (the dot made on first use, its branch
 * moved to this node) and then a mount use of that branch for the kubelet's directory, the same
 * record a CSI mount makes: while it lasts the branch is not moved, rolled back or deleted. An
 * unmount ends the uses recorded for the directory.
 */
export class FlexMounts {
  readonly #deps: FlexMountsDeps;

  constructor(deps: FlexMountsDeps) {
    this.#deps = deps;
  }

  async mount(raw: unknown): Promise<FlexMountReply> {
    const r = checkMountRequest(raw);
    const { handlers, caller } = this.#deps;
    for (let attempt = 1; ; attempt++) {
      const procured = await handlers.Procure(caller, { Namespace: r.Namespace, Name: r.Name, Subdot: r.Subdot });
      const fsId = await this.#procuredBranch(r.Subdot === ROOT_SUBDOT ? procured : dirname(procured), r);
      try {
        const path = await handlers.PublishBranch(caller, {
          FilesystemId: fsId,
          Volume: `${USE_PREFIX}${r.Namespace}/${r.Name}`,
          Target: r.Target,
          ReadOnly: r.ReadOnly,
          Subdot: r.Subdot,
        });
        return { Path: path, FilesystemId: fsId };
      } catch (e) {
        // Another node took the branch between Procure and the use: Procure again.
        if (!(isDotmeshError(e) && e.code === 'NOT_MASTER') || attempt >= MOUNT_ATTEMPTS) throw e;
      }
    }
  }

  async unmount(raw: unknown): Promise<FlexUnmountReply> {
    const { Target } = checkUnmountRequest(raw);
    const { ctx, handlers, caller } = this.#deps;
    let released = 0;
    for (const fsId of ctx.index.branches.keys()) {
      const record = ctx.publications.of(fsId);
      if (record?.node_id !== ctx.nodeId || !record.uses.some((u) => u.kind === 'mount' && u.target === Target)) continue;
      await handlers.UnpublishBranch(caller, { FilesystemId: fsId, Target });
      released++;
    }
    return { Released: released };
  }

  /**
   * Ends this node's FlexVolume uses whose directory `gone` says the kubelet removed: an
   * unmount the driver made while the server was down (it unbinds and reports success, so pods
   * can go, and the kubelet then removes the directory) leaves its use behind until this runs
   * at start.
   */
  async pruneStale(gone: (target: string) => boolean): Promise<string[]> {
    const { ctx, handlers, caller } = this.#deps;
    const ended: string[] = [];
    for (const fsId of ctx.index.branches.keys()) {
      const record = ctx.publications.of(fsId);
      if (record?.node_id !== ctx.nodeId) continue;
      for (const use of record.uses) {
        if (use.kind !== 'mount' || !use.volume.startsWith(USE_PREFIX) || !gone(use.target)) continue;
        await handlers.UnpublishBranch(caller, { FilesystemId: fsId, Target: use.target });
        ended.push(use.target);
      }
    }
    return ended;
  }

  /**
   * The branch Procure chose (master, the branch containers follow, or the pinned one): the
   * one its link points at (Procure returns `<link>` or `<link>/<subdot>`).
   */
  async #procuredBranch(link: string, r: { Namespace: string; Name: string }): Promise<string> {
    const { ctx } = this.#deps;
    const target = await readlink(link).catch(() => undefined);
    const fsId = [...ctx.index.branches.keys()].find((id) => ctx.storage.volumePath(id) === target);
    if (fsId === undefined) {
      throw new DotmeshError('INTERNAL', `Procure of ${r.Namespace}/${r.Name} left no link to a branch of this node`);
    }
    return fsId;
  }
}

/**
 * Whether the kubelet removed a volume directory, as far as this server can tell: the
 * directory is gone and the directory that would hold it is visible — for the kubelet's
 * `<root>/pods/<uid>/volumes/<plugin>/<name>`, its `<root>/pods` (the kubelet removes the whole
 * pod directory soon after), else its parent. A server that cannot see that far (a pod without
 * the kubelet's directory) keeps the use.
 */
export function removedByKubelet(target: string, exists: (path: string) => boolean = existsSync): boolean {
  const podsDir = /^(.*\/pods)\/[^/]+\/volumes\/[^/]+\/[^/]+$/.exec(target)?.[1];
  return !exists(target) && exists(podsDir ?? dirname(target));
}
