import type { Readable } from 'node:stream';
import type { CommitOrigin } from '@dotmesh/core';
import type { WireDot } from './dot-state.ts';
import type { IncomingVolume } from './incoming.ts';
import type { IncomingCommit } from './receive-commit.ts';

/** Transfer protocol versions this server speaks (capability exchange: `hello`). */
export const PROTOCOL_NAME = 'dotmesh-transfer';
export const PROTOCOL_VERSIONS = [1] as const;

export interface Hello {
  readonly protocol: string;
  readonly versions: readonly number[];
  readonly nodeId: string;
  /** The storage driver's kind: commit streams only move between drivers of the same kind. */
  readonly driver: string;
  readonly capabilities: readonly string[];
}

/**
 * One end of a transfer, as the engine drives it: the local server (LocalSide) or a peer
 * reached over HTTP(S) (PeerSide). The same operations, the same checks, the same errors on
 * both, with the calling user's rights. Streams are framed (frames.ts) on both.
 */
export interface TransferSide {
  /** For messages: "this server" / "peer 10.0.0.2:32607". */
  readonly label: string;
  hello(): Promise<Hello>;
  /** The dot by name, or null when it does not exist or the caller may not see it. */
  state(namespace: string, name: string): Promise<WireDot | null>;
  /** A framed stream of one commit, complete or incremental from `parent`. */
  exportCommit(fsId: string, commitId: string, parent: CommitOrigin | null): Promise<Readable>;
  /** Estimated bytes of that stream. */
  predictSize(fsId: string, commitId: string, parent: CommitOrigin | null): Promise<number>;
  /** Applies a framed commit stream; resolves once the commit is durable here. */
  receiveCommit(c: IncomingCommit, framed: Readable): Promise<void>;
  /** Makes sure a branch volume exists (a branch with no own commits to receive). */
  ensureBranch(v: IncomingVolume): Promise<void>;
  /** Moves commits after `common` (all when null) to a -DIVERGED- branch; returns its name. */
  stash(fsId: string, common: string | null): Promise<string>;
  /** Renames a branch (another id, same name as an incoming one) to a -DIVERGED- name. */
  stashBranch(fsId: string): Promise<string>;
  /** Commits uncommitted changes of a branch before a stash. */
  commitDirty(fsId: string): Promise<void>;
}
