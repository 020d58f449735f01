/**
 * Where container lists come from, and how the containers using a branch are stopped around
 * a change of what their path shows. The Docker tracker (docker/tracker.ts) implements it
 * over the Docker Engine API; without Docker the server reports real empty lists.
 */
export interface ContainerInfo {
  readonly Name: string;
  readonly Id: string;
}

/** Which containers an operation affects: those using a branch, or those mounted through a link. */
export type ContainerMatch = { readonly fsId: string } | { readonly link: string };

export interface ContainerTracker {
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
}

export const NO_CONTAINERS: ContainerTracker = {
  containersFor: async () => [],
  snapshot: async () => () => [],
  whileStopped: async (_match, _what, fn) => fn(),
};
