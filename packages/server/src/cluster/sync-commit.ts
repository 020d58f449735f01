import { DotmeshError } from '@dotmesh/core';
import type { ClusterView } from './view.ts';

export interface SyncCommitDeps {
  readonly nodeId: string;
  readonly view: Pick<ClusterView, 'nodes'>;
  /** Makes node `to` hold branch `fsId`'s history as this node has it now (Replicator.sendNow). */
  readonly send: (dotId: string, fsId: string, to: string) => Promise<void>;
  /** How long a Commit waits for another node, at most. */
  readonly timeoutMs: number;
}

export interface SyncCommit {
  readonly dotId: string;
  readonly fsId: string;
  readonly commitId: string;
  /** Names the commit in messages (`ns/name`, branch). */
  readonly what: string;
}

/**
 * The second half of a Commit on a `sync` branch: sends the branch (which holds the new commit)
 * to every other live node at once and resolves with the first one that holds it. Bounded by
 * `timeoutMs`. NOT_REPLICATED when no other live node exists, every send failed, or none
 * finished in time: the commit is made and kept on this node and the background replication
 * goes on delivering it (the sends still under way finish), but it is not acknowledged as
 * durable — a client must not take it for one that survives this node's loss.
 */
export async function awaitOtherNode(deps: SyncCommitDeps, c: SyncCommit): Promise<string> {
  const others = deps.view.nodes().filter((n) => n.id !== deps.nodeId && n.clusterPort !== 0);
  if (others.length === 0) throw notReplicated(deps, c, 'there is no other live node to hold a copy', []);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = Symbol('timed out');
  const sends = others.map((n) => deps.send(c.dotId, c.fsId, n.id).then(() => n.id));
  try {
    const first = await Promise.race([
      Promise.any(sends),
      new Promise<typeof timedOut>((resolve) => {
        timer = setTimeout(() => resolve(timedOut), deps.timeoutMs);
      }),
    ]);
    if (first === timedOut) {
      throw notReplicated(
        deps,
        c,
        `no other node confirmed holding it within ${deps.timeoutMs} ms`,
        others.map((n) => n.id),
      );
    }
    return first;
  } catch (err) {
    if (err instanceof DotmeshError) throw err;
    const reasons = err instanceof AggregateError ? err.errors.map((e: unknown) => (e as Error).message) : [String(err)];
    throw notReplicated(
      deps,
      c,
      `sending it to the other nodes failed (${reasons.join('; ')})`,
      others.map((n) => n.id),
      err,
    );
  } finally {
    clearTimeout(timer);
  }
}

function notReplicated(
  deps: SyncCommitDeps,
  c: SyncCommit,
  why: string,
  tried: readonly string[],
  cause?: unknown,
): DotmeshError {
  return new DotmeshError(
    'NOT_REPLICATED',
    `commit ${c.commitId} of ${c.what} is held by node ${deps.nodeId} only: ${why} (the branch's durability is sync)`,
    {
      hint:
        'the commit is made and kept (dm log lists it) and reaches the other nodes when they are back; do not commit again to retry. ' +
        'To have commits acknowledged by one node alone, set the branch async (dm dot set-durability async)',
      data: { commitId: c.commitId, node: deps.nodeId, nodes: [...tried], timeoutMs: deps.timeoutMs },
      ...(cause === undefined ? {} : { cause }),
    },
  );
}
