import { readlink } from 'node:fs/promises';
import { DotmeshError, parseVolumeName, type VolumeName } from '@dotmesh/core';
import type { ContainerInfo, ContainerMatch, ContainerTracker, ContainerUse } from '../dots/containers.ts';
import type { ContainerPaths } from '../dots/procure.ts';
import type { Logger } from '../log.ts';
import type { EngineClient, RunningContainer } from './engine-client.ts';

/** A ContainerUse with the volume name the container was started with. */
export interface VolumeUse extends ContainerUse {
  readonly volumeName: string;
}

export interface DockerTrackerOptions {
  readonly engine: EngineClient;
  /** The volume driver name containers use (the plugin socket's name). */
  readonly driverName: string;
  readonly paths: ContainerPaths;
  /** The branch whose live data is at `path` (a link target). */
  readonly fsIdAt: (path: string) => string | undefined;
  readonly logger: Logger;
  /** `docker stop` grace period before SIGKILL. Default 10 s. */
  readonly stopTimeoutSeconds?: number;
}

/**
 * Containers using our volumes, from the Docker Engine API: running containers whose mounts
 * have our driver, mapped to branch filesystems through the link their volume name goes through.
 * Every question lists afresh (one Engine API call, a few ms), so a refusal never rests on a
 * container that is gone or misses a new one; `snapshot()` answers many questions from one
 * listing (`dm list` over every dot). An engine that does not answer has no
 * running containers (its containers cannot be running either); that is logged once a minute.
 */
export class DockerContainerTracker implements ContainerTracker {
  readonly #o: DockerTrackerOptions;
  #lastWarning = 0;

  constructor(options: DockerTrackerOptions) {
    this.#o = options;
  }

  /** Every use of our volumes by a running container, listed now. */
  async uses(): Promise<VolumeUse[]> {
    return this.#list();
  }

  async containersFor(fsId: string): Promise<ContainerInfo[]> {
    return unique((await this.uses()).filter((u) => u.fsId === fsId).map((u) => u.container));
  }

  async snapshot(): Promise<(fsId: string) => ContainerInfo[]> {
    const uses = await this.uses();
    return (fsId) => unique(uses.filter((u) => u.fsId === fsId).map((u) => u.container));
  }

  async whileStopped<T>(match: ContainerMatch, what: string, fn: () => Promise<T>): Promise<T> {
    const uses = await this.uses();
    const affected = unique(
      uses.filter((u) => ('fsId' in match ? u.fsId === match.fsId : u.link === match.link)).map((u) => u.container),
    );
    if (affected.length === 0) return fn();
    const removable: string[] = [];
    for (const c of affected) if (await this.#o.engine.autoRemove(c.Id).catch(() => false)) removable.push(c.Name);
    if (removable.length > 0) {
      throw new DotmeshError(
        'IN_USE',
        `Cannot ${what}: stopping ${plural(removable)} would delete ${removable.length === 1 ? 'it' : 'them'} (started with --rm): ${removable.join(', ')}`,
        { hint: 'stop those containers yourself, or run them without --rm, then try again' },
      );
    }
    const names = affected.map((c) => c.Name).join(', ');
    this.#o.logger.info({ containers: names, what }, 'stopping containers');
    const stopFailures = await this.#each(affected, (c) => this.#o.engine.stop(c.Id, this.#o.stopTimeoutSeconds ?? 10));
    if (stopFailures.length > 0) {
      // Leave nothing half-done: what did stop is started again before giving up.
      await this.#each(
        affected.filter((c) => !stopFailures.includes(c.Name)),
        (c) => this.#o.engine.start(c.Id),
      );
      throw new DotmeshError('UNAVAILABLE', `Cannot ${what}: Docker could not stop ${stopFailures.join(', ')}`, {
        hint: "nothing was changed; the server log has the engine's error",
      });
    }
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: await fn() };
    } catch (error) {
      outcome = { ok: false, error };
    }
    const failed = await this.#each(affected, (c) => this.#o.engine.start(c.Id));
    if (!outcome.ok) throw outcome.error;
    if (failed.length > 0) {
      throw new DotmeshError('UNAVAILABLE', `${what} done, but ${plural(failed)} did not start again: ${failed.join(', ')}`, {
        hint: "start them with docker start; the server log has the engine's error",
      });
    }
    this.#o.logger.info({ containers: names, what }, 'started containers again');
    return outcome.value;
  }

  async stop(containers: readonly ContainerInfo[], what: string): Promise<void> {
    if (containers.length === 0) return;
    this.#o.logger.info({ containers: containers.map((c) => c.Name).join(', '), what }, 'stopping containers for good');
    const failed = await this.#each(containers, (c) => this.#o.engine.stop(c.Id, this.#o.stopTimeoutSeconds ?? 10));
    if (failed.length > 0) {
      throw new DotmeshError('UNAVAILABLE', `Cannot ${what}: Docker could not stop ${failed.join(', ')}`, {
        hint: "stop them with docker stop and try again; the server log has the engine's error",
      });
    }
  }

  /** Runs `action` on every container at once; returns the names of those it failed for (logged). */
  async #each(containers: readonly ContainerInfo[], action: (c: ContainerInfo) => Promise<void>): Promise<string[]> {
    const failed: string[] = [];
    await Promise.all(
      containers.map((c) =>
        action(c).catch((err: unknown) => {
          failed.push(c.Name);
          this.#o.logger.error({ err, container: c.Name }, 'Docker engine call failed');
        }),
      ),
    );
    return failed.sort();
  }

  async #list(): Promise<VolumeUse[]> {
    let running: RunningContainer[];
    try {
      running = await this.#o.engine.listRunning();
    } catch (err) {
      if (Date.now() - this.#lastWarning > 60_000) {
        this.#lastWarning = Date.now();
        this.#o.logger.warn({ err }, 'the Docker engine does not answer: no containers are tracked until it does');
      }
      return [];
    }
    const uses: VolumeUse[] = [];
    const targets = new Map<string, Promise<string | undefined>>();
    for (const c of running) {
      for (const m of c.mounts) {
        if (m.driver !== this.#o.driverName) continue;
        // By name: Docker leaves the mount's Source empty for a volume made by the same run.
        let volume: VolumeName;
        try {
          volume = parseVolumeName(m.name);
        } catch {
          continue;
        }
        const link = this.#o.paths.linkPath(volume.namespace, volume.dot, volume.pinnedBranch);
        let target = targets.get(link);
        if (target === undefined) {
          target = readlink(link).catch(() => undefined);
          targets.set(link, target);
        }
        const resolved = await target;
        uses.push({
          container: { Name: c.name, Id: c.id },
          volumeName: m.name,
          link,
          subdot: volume.subdot,
          fsId: resolved === undefined ? undefined : this.#o.fsIdAt(resolved),
        });
      }
    }
    return uses;
  }
}

function unique(containers: ContainerInfo[]): ContainerInfo[] {
  const seen = new Map<string, ContainerInfo>();
  for (const c of containers) seen.set(c.Id, c);
  return [...seen.values()].sort((a, b) => a.Name.localeCompare(b.Name));
}

function plural(names: readonly string[]): string {
  return names.length === 1 ? 'container' : `${names.length} containers`;
}
