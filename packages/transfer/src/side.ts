import type { Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import type { CommitOrigin } from '@dotmesh/core';
import type { SocketTransferOptions } from '@dotmesh/storage';
import type { DataConnection } from './data-connections.ts';
import type { IncomingCommit, IncomingVolume } from './incoming.ts';
import type { WireDot } from './wire-dot.ts';

/** Transfer protocol versions this server speaks (capability exchange: `hello`). */
export const PROTOCOL_NAME = 'dotmesh-transfer';
export const PROTOCOL_VERSIONS = [1] as const;
/**
 * Capability: the server takes pushed commits and serves pulled ones on connections upgraded
 * to STREAM_UPGRADE (peer-streams.ts), besides the plain HTTP bodies every version speaks.
 */
export const STREAM_UPGRADE_CAPABILITY = 'commit-stream-upgrade';

export interface Hello {
  readonly protocol: string;
  readonly versions: readonly number[];
  readonly nodeId: string;
  /** The storage driver's kind: commit streams only move between drivers of the same kind. */
  readonly driver: string;
  readonly capabilities: readonly string[];
}

export interface StateOptions {
  /** false: `dirtyBytes` and `containers` may be left out (0 / empty). Default true. */
  readonly usage?: boolean;
}

/**
 * One end of a transfer, as the engine drives it: the local server (the host's side,
 * TransferHost.localSide) or a peer reached over HTTP(S) (PeerSide). The same operations, the
 * same checks, the same errors on both, with the calling user's rights. Commit streams are framed (@dotmesh/storage frames.ts).
 */
export interface TransferSide {
  /** For messages: "this server" / "peer 10.0.0.2:32607". */
  readonly label: string;
  hello(): Promise<Hello>;
  /**
   * The dot by name, or null when it does not exist or the caller may not see it. `o.usage:
   * false` (what a sending side is asked: only its history is read) allows leaving out what the
   * branches' live data is used for — `dirtyBytes` 0 and `containers` empty — which costs a
   * look at the pool; a side may describe it anyway.
   */
  state(namespace: string, name: string, o?: StateOptions): Promise<WireDot | null>;
  /** One commit, complete or incremental from `parent`, ready to go to the receiving side. */
  exportCommit(fsId: string, commitId: string, parent: CommitOrigin | null): Promise<CommitStream>;
  /** Estimated bytes of that stream. */
  predictSize(fsId: string, commitId: string, parent: CommitOrigin | null): Promise<number>;
  /**
   * Applies a commit stream; resolves once the commit is durable on this side. `onProgress`
   * gets the framed bytes moved so far. The caller closes `stream` afterwards.
   */
  receiveCommit(c: IncomingCommit, stream: CommitStream, onProgress: (bytes: number) => void): Promise<void>;
  /** Makes sure a branch volume exists (a branch with no own commits to receive). */
  ensureBranch(v: IncomingVolume): Promise<void>;
  /** Moves commits after `common` (all when null) to a -DIVERGED- branch; returns its name. */
  stash(fsId: string, common: string | null): Promise<string>;
  /** Renames a branch (another id, same name as an incoming one) to a -DIVERGED- name. */
  stashBranch(fsId: string): Promise<string>;
  /** Commits uncommitted changes of a branch before a stash. */
  commitDirty(fsId: string): Promise<void>;
}

/**
 * One commit's framed stream on its way from the sending side to the receiving one. The
 * receiving side takes it in the cheapest way both support: a plain TCP socket read or
 * written by the storage driver's own process (no Node in the data path), else through Node.
 */
export interface CommitStream {
  /** The stream, read through Node. Called at most once. */
  readable(): Readable;
  /**
   * Present when the sending side can write the stream into a connected TCP socket (not TLS)
   * itself (its driver's exportCommitTo); the socket stays open.
   */
  readonly writeTo?: (socket: Socket, options: SocketTransferOptions) => Promise<void>;
  /**
   * Present when the stream arrives on a connection of its own (an upgraded one): the peer
   * starts sending once `start()` is called, so the receiving side calls it once its reader is
   * in place — the storage driver's own process for a plain TCP socket, else Node.
   */
  readonly socket?: { readonly socket: Duplex; start(): void };
  /**
   * Present when the stream arrives on a data connection of the pumps' own (a push over HTTPS,
   * data-connections.ts): calling it tells the peer to send, and resolves with the connection
   * (TLS ended by the receiving driver's process) or fails when it does not come. At most once.
   */
  readonly data?: () => Promise<DataConnection>;
  /** Releases the source whatever happened (stops an export, closes a connection). Idempotent. */
  close(): void;
}
