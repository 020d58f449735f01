/**
 * Where container lists come from. The Docker issue plugs in a tracker backed by the
 * Docker Engine API; until then the server reports real empty lists.
 */
export interface ContainerInfo {
  readonly Name: string;
  readonly Id: string;
}

export interface ContainerTracker {
  /** Containers currently using the given branch filesystem. */
  containersFor(fsId: string): Promise<ContainerInfo[]>;
}

export const NO_CONTAINERS: ContainerTracker = {
  containersFor: async () => [],
};
