/**
 * Where container lists come from, and how the containers using a branch are stopped around
 * a change of what their path shows. The Docker tracker (docker/tracker.ts) implements it
 * over the Docker Engine API; without Docker the server reports real empty lists.
 */
export interface ContainerInfo {
  readonly Name: string;
  readonly Id: string;
}

/** One running container's use of one of our volumes. */
export interface ContainerUse {
  readonly container: ContainerInfo;
  /** The link the mount goes through (ContainerPaths.linkPath: following, or pinned to a branch). */
  readonly link: string;
  /** The subdot mounted (`__root__`: the whole dot). */
  readonly subdot: string;
  /** The branch filesystem the link pointed at when listed; undefined if it points nowhere we know. */
  readonly fsId: string | undefined;
}

/** Which containers an operation affects: those using a branch, or those mounted through a link. */
export type ContainerMatch = { readonly fsId: string } | { readonly link: string };

export interface ContainerTracker {
  /** Every use of our volumes by a running container, listed now. */
  uses(): Promise<ContainerUse[]>;
  /** Containers currently using the given branch filesystem (pinned or following). */
  containersFor(fsId: string): Promise<ContainerInfo[]>;
  /** One listing for many questions: which containers used each branch at the time of the call. */
  snapshot(): Promise<(fsId: string) => ContainerInfo[]>;
  /**
   * Stops the running containers `match` selects, runs `fn`, and starts them again (also when
   * `fn` fails). Refuses, naming them, when stopping one would delete it (`docker run --rm`);
   * `what` names the operation in that refusal ("reset admin/foo").
   */
  whileStopped<T>(match: ContainerMatch, what: string, fn: () => Promise<T>): Promise<T>;
  /**
   * Stops `containers` for good (nothing starts them again). Throws UNAVAILABLE, naming them,
   * when the engine could not stop some; those it did stop stay stopped.
   */
  stop(containers: readonly ContainerInfo[], what: string): Promise<void>;
}

export const NO_CONTAINERS: ContainerTracker = {
  uses: async () => [],
  containersFor: async () => [],
  snapshot: async () => () => [],
  whileStopped: async (_match, _what, fn) => fn(),
  stop: async () => {},
};

/** The KeyedQueue key under which the container moves of one dot (switch, reset) run one at a time. */
export function containerMovesKey(dotId: string): string {
  return `containers:${dotId}`;
}
