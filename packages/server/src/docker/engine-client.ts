import Docker from 'dockerode';

/**
 * The few Docker Engine API calls Dotmesh needs, over the engine's unix socket (dockerode).
 * An interface so the tracker's logic is testable on its own; the real engine is used in
 * every integration test.
 */
export interface ContainerMount {
  /** The volume driver ("" for binds). */
  readonly driver: string;
  /** The volume name as the user gave it. */
  readonly name: string;
}

export interface RunningContainer {
  readonly id: string;
  /** As Docker names it, with its leading slash (`/web`), as the original reported it. */
  readonly name: string;
  readonly mounts: readonly ContainerMount[];
}

export interface EngineClient {
  /** Running (and restarting or paused) containers with their mounts. */
  listRunning(): Promise<RunningContainer[]>;
  /** Whether the container was started with --rm (stopping it deletes it). */
  autoRemove(id: string): Promise<boolean>;
  stop(id: string, timeoutSeconds: number): Promise<void>;
  start(id: string): Promise<void>;
}

interface ListedContainer {
  Id: string;
  Names?: string[];
  Mounts?: Array<{ Driver?: string; Name?: string }>;
}

export class DockerodeEngineClient implements EngineClient {
  readonly #docker: Docker;

  constructor(socketPath: string) {
    this.#docker = new Docker({ socketPath, timeout: 30_000 });
  }

  async listRunning(): Promise<RunningContainer[]> {
    const listed = (await this.#docker.listContainers({
      filters: { status: ['running', 'restarting', 'paused'] },
    })) as ListedContainer[];
    return listed.map((c) => ({
      id: c.Id,
      name: c.Names?.[0] ?? `/${c.Id.slice(0, 12)}`,
      mounts: (c.Mounts ?? []).map((m) => ({ driver: m.Driver ?? '', name: m.Name ?? '' })),
    }));
  }

  async autoRemove(id: string): Promise<boolean> {
    const info = await this.#docker.getContainer(id).inspect();
    return info.HostConfig?.AutoRemove === true;
  }

  async stop(id: string, timeoutSeconds: number): Promise<void> {
    await this.#docker
      .getContainer(id)
      .stop({ t: timeoutSeconds })
      .catch((e: { statusCode?: number }) => {
        if (e?.statusCode !== 304 && e?.statusCode !== 404) throw e; // already stopped, or removed since
      });
  }

  async start(id: string): Promise<void> {
    await this.#docker
      .getContainer(id)
      .start()
      .catch((e: { statusCode?: number }) => {
        if (e?.statusCode !== 304 && e?.statusCode !== 404) throw e; // already started, or removed since
      });
  }
}
