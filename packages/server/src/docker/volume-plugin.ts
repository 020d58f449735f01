import { join } from 'node:path';
import { DotmeshError, formatVolumeName, isDotmeshError, parseVolumeName, ROOT_SUBDOT, type VolumeName } from '@dotmesh/core';
import { type Caller, canAccess } from '../dots/caller.ts';
import type { DotContext } from '../dots/context.ts';
import { type ContainerPaths, procure } from '../dots/procure.ts';
import { MountRefs } from './mount-refs.ts';

/**
 * The Docker volume driver (legacy plugin protocol, VolumeDriver): each method takes the
 * decoded request body and returns the response body. Errors go back in `Err` with the same
 * texts as the RPC API. Every call acts as one configured Dotmesh user and gets that user's
 * permission errors. Get, Path and List only read the in-memory index (dockerd calls them
 * constantly); Create and Mount make the dot when it is missing and, on a cluster, move a
 * branch another node masters here first (both as Procure).
 */
export interface VolumePluginDeps {
  readonly ctx: DotContext;
  readonly paths: ContainerPaths;
  /** The user the plugin acts as; undefined when that user does not exist. */
  readonly caller: () => Promise<Caller | undefined>;
  /** The owner of a dot made in `namespace` (the namespace's user when admin makes it). */
  readonly ownerOf: (caller: Caller, namespace: string) => Promise<string>;
  /**
   * On a cluster of several nodes: moves a branch another node masters here (a handoff), as
   * the RPC's Procure does, so a mount on any node gets the branch with its history. Absent on
   * a single node.
   */
  readonly takeOver?: (caller: Caller, fsId: string) => Promise<void>;
}

type Body = Record<string, unknown>;
export type PluginMethod = (request: Body) => Promise<Body>;

export class VolumePlugin {
  readonly refs = new MountRefs();
  readonly #d: VolumePluginDeps;
  readonly methods: Readonly<Record<string, PluginMethod>>;

  constructor(deps: VolumePluginDeps) {
    this.#d = deps;
    this.methods = {
      'Plugin.Activate': async () => ({ Implements: ['VolumeDriver'] }),
      'VolumeDriver.Capabilities': async () => ({ Capabilities: { Scope: 'local' } }),
      'VolumeDriver.Create': (r) => this.#guard(() => this.#create(r)),
      'VolumeDriver.Remove': (r) => this.#guard(() => this.#remove(r)),
      'VolumeDriver.Mount': (r) => this.#guard(() => this.#mount(r)),
      'VolumeDriver.Unmount': (r) => this.#guard(() => this.#unmount(r)),
      'VolumeDriver.Path': (r) => this.#guard(() => this.#path(r)),
      'VolumeDriver.Get': (r) => this.#guard(() => this.#get(r)),
      'VolumeDriver.List': () => this.#guard(() => this.#list()),
    };
  }

  async #guard(fn: () => Promise<Body>): Promise<Body> {
    try {
      return { ...(await fn()), Err: '' };
    } catch (e) {
      if (isDotmeshError(e)) return { Err: e.hint ? `${e.message} (${e.hint})` : e.message };
      this.#d.ctx.logger.error({ err: e }, 'docker plugin: unexpected error');
      return { Err: `internal error: ${e instanceof Error ? e.message : String(e)} (the dotmesh-server log has details)` };
    }
  }

  async #caller(): Promise<Caller> {
    const caller = await this.#d.caller();
    if (!caller) {
      throw new DotmeshError('UNAVAILABLE', 'the Docker plugin user does not exist', {
        hint: 'set dockerPluginUser in the server config to an existing user',
      });
    }
    return caller;
  }

  async #create(r: Body): Promise<Body> {
    const volume = parseVolumeName(r.Name);
    checkOptions(r.Opts);
    await this.#procure(volume);
    return {};
  }

  /** Docker forgets the volume; the dot stays (delete it with `dm dot delete`). */
  async #remove(r: Body): Promise<Body> {
    parseVolumeName(r.Name);
    return {};
  }

  async #mount(r: Body): Promise<Body> {
    const volume = parseVolumeName(r.Name);
    const id = mountId(r.ID);
    const mountpoint = await this.#procure(volume);
    this.refs.mount(formatVolumeName(volume), id);
    return { Mountpoint: mountpoint };
  }

  async #unmount(r: Body): Promise<Body> {
    const volume = parseVolumeName(r.Name);
    this.refs.unmount(formatVolumeName(volume), mountId(r.ID));
    return {};
  }

  async #path(r: Body): Promise<Body> {
    const volume = parseVolumeName(r.Name);
    const caller = await this.#caller();
    return { Mountpoint: this.#visible(caller, volume) ? this.#mountpoint(volume) : '' };
  }

  async #get(r: Body): Promise<Body> {
    const volume = parseVolumeName(r.Name);
    const caller = await this.#caller();
    if (!this.#visible(caller, volume)) {
      throw new DotmeshError('DOT_NOT_FOUND', `No such volume: ${String(r.Name)}`);
    }
    return { Volume: { Name: r.Name, Mountpoint: this.#mountpoint(volume), Status: {} } };
  }

  async #list(): Promise<Body> {
    const caller = await this.#caller();
    const volumes = [];
    for (const dot of this.#d.ctx.index.dots.values()) {
      if (!canAccess(caller, dot.info)) continue;
      const volume: VolumeName = {
        namespace: dot.info.namespace,
        dot: dot.info.name,
        pinnedBranch: undefined,
        subdot: '__default__',
      };
      volumes.push({ Name: formatVolumeName(volume), Mountpoint: this.#mountpoint(volume), Status: {} });
    }
    volumes.sort((a, b) => a.Name.localeCompare(b.Name));
    return { Volumes: volumes };
  }

  /** Whether the caller can see the volume's dot (and its pinned branch exists). */
  #visible(caller: Caller, v: VolumeName): boolean {
    const id = this.#d.ctx.index.dotIdByName(v.namespace, v.dot);
    const dot = id === undefined ? undefined : this.#d.ctx.index.dots.get(id);
    if (!dot || !canAccess(caller, dot.info)) return false;
    return v.pinnedBranch === undefined || dot.branches.has(v.pinnedBranch);
  }

  #mountpoint(v: VolumeName): string {
    const link = this.#d.paths.linkPath(v.namespace, v.dot, v.pinnedBranch);
    return v.subdot === ROOT_SUBDOT ? link : join(link, v.subdot);
  }

  async #procure(v: VolumeName): Promise<string> {
    const caller = await this.#caller();
    const takeOver = this.#d.takeOver;
    return procure(this.#d.ctx, this.#d.paths, caller, {
      namespace: v.namespace,
      name: v.pinnedBranch === undefined ? v.dot : `${v.dot}@${v.pinnedBranch}`,
      subdot: v.subdot,
      ownerOf: (ns) => this.#d.ownerOf(caller, ns),
      ...(takeOver ? { takeOver: (fsId: string) => takeOver(caller, fsId) } : {}),
    });
  }
}

/** The dm driver takes no options (`docker volume create -o`): refuse rather than ignore them. */
function checkOptions(opts: unknown): void {
  if (opts === null || opts === undefined) return;
  if (typeof opts !== 'object' || Array.isArray(opts)) throw new DotmeshError('INVALID_ARGUMENT', 'Opts must be an object');
  const keys = Object.keys(opts);
  if (keys.length > 0) {
    throw new DotmeshError('INVALID_ARGUMENT', `the dm volume driver takes no options, got: ${keys.slice(0, 5).join(', ')}`, {
      hint: 'name the dot, branch and subdot in the volume name: [NAMESPACE/]DOT[@BRANCH][.SUBDOT]',
    });
  }
}

function mountId(id: unknown): string {
  if (id === undefined || id === null || id === '') return '';
  if (typeof id !== 'string' || id.length > 256)
    throw new DotmeshError('INVALID_ARGUMENT', 'ID must be a string of at most 256 characters');
  return id;
}
