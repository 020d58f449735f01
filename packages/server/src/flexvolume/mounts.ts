import { readlink } from 'node:fs/promises';
import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import { checkMountRequest, checkUnmountRequest, type FlexMountReply, type FlexUnmountReply } from '@dotmesh/rpc/flexvolume';
import type { Caller } from '../dots/caller.ts';
import type { DotContext } from '../dots/context.ts';
import type { ContainerPaths } from '../dots/procure.ts';
import type { HandlerTable } from '../rpc/handlers.ts';

/** The `Volume` of the uses FlexVolume mounts record: `flexvolume:<namespace>/<name>`. */
const USE_PREFIX = 'flexvolume:';

/** How often a mount retries when its branch moved away between Procure and recording the use. */
const MOUNT_ATTEMPTS = 3;

export interface FlexMountsDeps {
  readonly ctx: Pick<DotContext, 'index' | 'storage' | 'publications' | 'nodeId'>;
  readonly handlers: Pick<HandlerTable, 'Procure' | 'PublishBranch' | 'UnpublishBranch'>;
  readonly paths: ContainerPaths;
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
      await handlers.Procure(caller, { Namespace: r.Namespace, Name: r.Name, Subdot: r.Subdot });
      const fsId = await this.#procuredBranch(r.Namespace, r.Name);
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
   * Ends this node's FlexVolume uses whose directory is no longer a mount point (`mounted`
   * says which are): an unmount the driver made while the server was down (it unbinds and
   * reports success, so pods can go) leaves its use behind until this runs at start.
   */
  async pruneStale(mounted: (target: string) => boolean): Promise<string[]> {
    const { ctx, handlers, caller } = this.#deps;
    const gone: string[] = [];
    for (const fsId of ctx.index.branches.keys()) {
      const record = ctx.publications.of(fsId);
      if (record?.node_id !== ctx.nodeId) continue;
      for (const use of record.uses) {
        if (use.kind !== 'mount' || !use.volume.startsWith(USE_PREFIX) || mounted(use.target)) continue;
        await handlers.UnpublishBranch(caller, { FilesystemId: fsId, Target: use.target });
        gone.push(use.target);
      }
    }
    return gone;
  }

  /** The branch Procure pointed the dot's link at (master, the branch containers follow, or the pinned one). */
  async #procuredBranch(namespace: string, name: string): Promise<string> {
    const { ctx, paths } = this.#deps;
    const at = name.indexOf('@');
    const link = at < 0 ? paths.linkPath(namespace, name) : paths.linkPath(namespace, name.slice(0, at), name.slice(at + 1));
    const target = await readlink(link).catch(() => undefined);
    const fsId = [...ctx.index.branches.keys()].find((id) => ctx.storage.volumePath(id) === target);
    if (fsId === undefined) {
      throw new DotmeshError('INTERNAL', `Procure of ${namespace}/${name} left no link to a branch of this node`);
    }
    return fsId;
  }
}
