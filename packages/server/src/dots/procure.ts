import { lstat, mkdir, readdir, readlink, rename, rmdir, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_SUBDOT, DotmeshError, MASTER_BRANCH, normalizeBranch, ROOT_SUBDOT, validateName } from '@dotmesh/core';
import { type Caller, canAccess } from './caller.ts';
import type { DotContext } from './context.ts';
import { type CreateDeps, createDot } from './create-delete.ts';
import { resolveBranch } from './resolve.ts';

/**
 * Stable host paths for dots, as the original's CONTAINER_MOUNT_PREFIX: `<dir>/<ns>/<dot>` is
 * a symlink to the live data of the branch containers follow (master until
 * SwitchContainers), `<dir>/<ns>/<dot>@<branch>` pins a branch. Clients get
 * `<link>/<subdot>`; switching branch re-points the link atomically.
 */
export class ContainerPaths {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  linkPath(namespace: string, name: string, pinnedBranch?: string): string {
    return join(this.#dir, namespace, pinnedBranch ? `${name}@${pinnedBranch}` : name);
  }

  /** Points the link at `target`, replacing any previous link atomically. */
  async point(link: string, target: string): Promise<void> {
    const current = await readlink(link).catch(() => undefined);
    if (current === target) return;
    await mkdir(join(link, '..'), { recursive: true, mode: 0o755 });
    const tmp = `${link}.tmp-${process.pid}-${Date.now()}`;
    await symlink(target, tmp);
    await rename(tmp, link);
  }

  /** Which branch's live data the unpinned link points at, if any. */
  async currentTarget(namespace: string, name: string): Promise<string | undefined> {
    return readlink(this.linkPath(namespace, name)).catch(() => undefined);
  }

  /**
   * Every symlink under the directory (`<ns>/<entry>`), with what it points at. Temporary
   * links a crash left mid-`point` are listed with `temporary: true`. Anything else found
   * there (files, directories) is not ours and not listed.
   */
  async links(): Promise<ContainerLink[]> {
    const out: ContainerLink[] = [];
    for (const namespace of await readdir(this.#dir).catch(() => [] as string[])) {
      const nsDir = join(this.#dir, namespace);
      for (const entry of await readdir(nsDir).catch(() => [] as string[])) {
        const path = join(nsDir, entry);
        if (!(await lstat(path).catch(() => undefined))?.isSymbolicLink()) continue;
        const target = await readlink(path).catch(() => '');
        const temporary = /\.tmp-\d+-\d+$/.test(entry);
        const base = temporary ? entry.replace(/\.tmp-\d+-\d+$/, '') : entry;
        const at = base.indexOf('@');
        out.push({
          path,
          namespace,
          name: at < 0 ? base : base.slice(0, at),
          pinnedBranch: at < 0 ? undefined : base.slice(at + 1),
          target,
          temporary,
        });
      }
    }
    return out;
  }

  /** Removes links (by path), then the namespace directories they leave empty. */
  async remove(links: readonly ContainerLink[]): Promise<void> {
    for (const link of links) await unlink(link.path).catch(ignoreMissing);
    for (const namespace of new Set(links.map((l) => l.namespace))) {
      await rmdir(join(this.#dir, namespace)).catch(() => undefined); // not empty: another dot's links
    }
  }

  /**
   * Removes the links of dot `<ns>/<name>` (`<name>`, `<name>@<branch>`) that point at one of
   * `targets` (the dot's volume paths). Links the name got since, for another dot, point
   * elsewhere and are kept.
   */
  async removeDotLinks(namespace: string, name: string, targets: ReadonlySet<string>): Promise<ContainerLink[]> {
    const gone = (await this.links()).filter((l) => l.namespace === namespace && l.name === name && targets.has(l.target));
    await this.remove(gone);
    return gone;
  }
}

/** A symlink under the container mount directory. */
export interface ContainerLink {
  readonly path: string;
  readonly namespace: string;
  readonly name: string;
  readonly pinnedBranch: string | undefined;
  readonly target: string;
  /** Made by `point` and not renamed into place (a crash in between). */
  readonly temporary: boolean;
}

function ignoreMissing(e: unknown): void {
  if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
}

export interface ProcureRequest {
  readonly namespace: unknown;
  readonly name: unknown;
  readonly subdot: unknown;
  /** Who owns a dot Procure creates (the namespace's user when admin creates it for them). */
  readonly ownerOf?: (namespace: string) => Promise<string>;
  /**
   * On a cluster of several nodes: makes this node the master of branch `fsId` (a handoff from
   * its master), resolving once this node holds it and serves it. Absent on a single node.
   */
  readonly takeOver?: (fsId: string) => Promise<void>;
}

/**
 * Procure: makes the dot (if missing and no branch is pinned) and returns its host path. On a
 * cluster, a branch mastered by another node is moved here first (handoff), with its history.
 */
export async function procure(
  ctx: CreateDeps & Pick<DotContext, 'masterNodes'>,
  paths: ContainerPaths,
  caller: Caller,
  req: ProcureRequest,
): Promise<string> {
  if (typeof req.name !== 'string') throw new DotmeshError('INVALID_ARGUMENT', 'Name must be a string');
  const at = req.name.indexOf('@');
  const dotName = at >= 0 ? req.name.slice(0, at) : req.name;
  const pinned = at >= 0 ? normalizeBranch(req.name.slice(at + 1)) : undefined;
  const namespace = validateName('namespace', req.namespace);
  validateName('dot', dotName);
  const subdot = req.subdot === '' || req.subdot === undefined ? DEFAULT_SUBDOT : validateName('subdot', req.subdot);
  const inCluster = ctx.view.dotByName(namespace, dotName);
  if (inCluster && canAccess(caller, inCluster) && req.takeOver) {
    const wanted = pinned !== undefined && pinned !== MASTER_BRANCH ? pinned : MASTER_BRANCH;
    const fsId = ctx.view.branchesOf(inCluster.id).get(wanted);
    if (fsId !== undefined && !ctx.masterNodes.isMine(fsId)) await req.takeOver(fsId);
  }
  if (ctx.index.dotIdByName(namespace, dotName) === undefined) {
    if (pinned !== undefined && pinned !== MASTER_BRANCH) {
      throw new DotmeshError(
        'BRANCH_NOT_FOUND',
        `Cannot create ${namespace}/${dotName} with branch ${pinned}: the dot does not exist`,
      );
    }
    const ownerOf = req.ownerOf;
    await createDot(ctx, caller, namespace, dotName, ownerOf ? () => ownerOf(namespace) : undefined).catch((e: unknown) => {
      if (!(e instanceof DotmeshError && e.code === 'DOT_EXISTS')) throw e;
    });
  }
  const isPinned = pinned !== undefined && pinned !== MASTER_BRANCH;
  let fsId: string;
  if (isPinned) {
    fsId = resolveBranch(ctx, caller, namespace, dotName, pinned).fsId;
  } else {
    const master = resolveBranch(ctx, caller, namespace, dotName, '');
    const current = await paths.currentTarget(namespace, dotName);
    const followed = [...master.dot.branches.values()].find((id) => ctx.storage.volumePath(id) === current);
    fsId = followed ?? master.fsId;
  }
  const link = paths.linkPath(namespace, dotName, isPinned ? pinned : undefined);
  await paths.point(link, ctx.storage.volumePath(fsId));
  if (subdot === ROOT_SUBDOT) return link;
  await ctx.storage.ensureDirectory(fsId, subdot);
  return join(link, subdot);
}
