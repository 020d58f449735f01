import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';

/**
 * The storage-driver contract. A driver stores *volumes* (one per branch, named by the
 * branch's filesystem id) and their *commits* (immutable snapshots, named by commit id).
 * It knows nothing of dots, names, users or the store: the server maps those onto it.
 *
 * Self-description: each volume carries a small JSON *label* stored beside its data (the
 * server puts the branch record there) and each commit carries a JSON *meta* stored inside
 * the commit's data, so a pool alone is enough to rebuild the server's index.
 *
 * Concurrency: the server serialises mutations of one volume (one queue per branch); the
 * driver must allow operations on different volumes to run in parallel.
 *
 * Crash safety: every mutating method is atomic as seen by `listVolumes`/`listCommits`
 * after a restart: a volume or commit is either there complete (with its label/meta) or
 * absent. Half-done work lives only under a staging area that `open()` removes.
 * Mutations are durable when the promise resolves (a power loss afterwards keeps them).
 */
export interface StorageDriver {
  readonly kind: string;

  /** Prepares the pool (layout, leftovers of interrupted work). Idempotent. */
  open(): Promise<RecoveryReport>;
  close(): Promise<void>;
  poolInfo(): Promise<PoolInfo>;

  /**
   * Creates a writable volume: empty, or (with `from`) a writable copy of a commit of any
   * volume ("branch"). Fails with CONFLICT if `id` exists.
   */
  createVolume(id: string, label: VolumeLabel, options?: { from?: CommitRef }): Promise<void>;
  /** Atomically replaces a volume's label. */
  writeLabel(id: string, label: VolumeLabel): Promise<void>;
  readLabel(id: string): Promise<VolumeLabel>;
  /** Removes a volume and all its commits. Idempotent: deleting what is gone succeeds. */
  deleteVolume(id: string): Promise<void>;
  listVolumes(): Promise<VolumeInfo[]>;
  /** Host path of the volume's live, writable data (a directory). */
  volumePath(id: string): string;
  /**
   * Makes the live data read-only (`true`) or writable again, whoever holds it open: opening
   * a file for writing, creating, renaming or removing anything in it then fails with EROFS
   * (btrfs: the subvolume's `ro` property). A file descriptor opened for writing before the
   * change keeps writing (the kernel checks at open). The driver's own steps still work on a
   * read-only live: `commit` snapshots it (it stays read-only), `rollback` replaces it by a
   * writable copy. Idempotent.
   */
  setLiveReadOnly(id: string, readOnly: boolean): Promise<void>;
  /** Whether the live data is read-only (setLiveReadOnly). */
  liveReadOnly(id: string): Promise<boolean>;
  /**
   * Creates a directory (and its parents) inside the live data if missing, e.g. a subdot.
   * `relPath` is relative, without `..` segments. Idempotent.
   */
  ensureDirectory(id: string, relPath: string): Promise<void>;
  /**
   * Removes a directory and everything in it from the live data (a subdot); missing: nothing
   * to do. Same path rules as ensureDirectory; never follows a symlink out of the volume.
   */
  removeDirectory(id: string, relPath: string): Promise<void>;
  /** Names in a directory of the live data (`""`: its top), sorted; a missing directory: []. */
  listDirectory(id: string, relPath: string): Promise<string[]>;

  /**
   * Takes an atomic read-only snapshot of the whole volume, storing `meta` inside it.
   * Fails with COMMIT_EXISTS if the id is taken in this volume.
   */
  commit(id: string, commitId: string, meta: CommitMeta): Promise<CommitInfo>;
  /** Commits of a volume in append order (ascending `seq`). */
  listCommits(id: string): Promise<CommitInfo[]>;
  /** Idempotent. */
  deleteCommit(id: string, commitId: string): Promise<void>;
  /** Host path of a commit's read-only data. */
  commitPath(id: string, commitId: string): string;

  /**
   * Replaces the live state of `id` with a writable copy of `to` (a commit of this volume
   * or of any other), atomically: a crash leaves either the old or the new live state.
   * Commits are not touched.
   */
  rollback(id: string, to: CommitRef): Promise<void>;

  /**
   * Sizes and dirty state of the given volumes (all when omitted). `o.referenced: false` when
   * only the dirty state is wanted: `referencedBytes` is not measured and reads 0.
   */
  sizes(ids?: readonly string[], o?: { readonly referenced?: boolean }): Promise<Map<string, VolumeSizes>>;

  /**
   * Space of each commit of a volume (commit id → sizes): `exclusiveBytes` is what deleting
   * that commit alone would free now. It changes when neighbours change (a deleted commit, a
   * new branch from it, writes to the live state), never because of time alone.
   * BRANCH_NOT_FOUND when the volume does not exist.
   */
  commitSizes(id: string): Promise<Map<string, CommitSizes>>;

  /**
   * One commit as a framed stream (frames.ts: CRC-32 per data frame, totals in the end frame),
   * complete (`parent` omitted) or as the difference from `parent`, which the receiving side
   * must already hold. The stream ends after its end frame, which is written only once the
   * whole commit was read; any failure (COMMIT_NOT_FOUND, a read error) fails the stream
   * instead. Destroying it stops the export.
   */
  exportCommit(id: string, commitId: string, options?: { parent?: CommitRef }): Readable;
  /**
   * Optional: the stream of exportCommit written by the driver itself (outside Node) straight
   * into `socket`, a connected TCP socket (not TLS) that stays open and the caller's (who may
   * go on reading it). Resolves once the end frame is out; fails (the end frame never sent)
   * like exportCommit, or with UNAVAILABLE when the peer stops reading for `idleTimeoutMs`.
   */
  exportCommitTo?(
    id: string,
    commitId: string,
    socket: Socket,
    options: SocketTransferOptions & { readonly parent?: CommitRef },
  ): Promise<void>;
  /**
   * Receives a framed stream made by exportCommit into volume `id` (which must exist). Reads
   * it up to its end frame and no further (what may follow on the stream is the caller's).
   * The commit becomes visible only once the whole stream arrived intact: TRANSFER_CORRUPT for
   * damaged or truncated framing, the stream's own error (UNAVAILABLE unless a DotmeshError)
   * when it fails first. The stream's parent and clone sources are checked to be `parent` (a
   * full stream when omitted) or the commit itself (INVALID_ARGUMENT otherwise). `onProgress`
   * gets the framed bytes read so far.
   */
  importCommit(
    id: string,
    stream: Readable,
    options?: { readonly parent?: CommitRef; readonly onProgress?: (bytes: number) => void },
  ): Promise<CommitInfo>;
  /**
   * Optional: importCommit of a stream the driver reads itself (outside Node) from `socket`, a
   * connected TCP socket (not TLS) with nothing buffered that Node must not read meanwhile.
   * `onReady` is called once the driver owns the socket (only then may the peer send);
   * UNAVAILABLE when the peer sends nothing for `idleTimeoutMs`. The socket stays open.
   */
  importCommitFrom?(
    id: string,
    socket: Socket,
    options: SocketTransferOptions & { readonly parent?: CommitRef; readonly onReady: () => void },
  ): Promise<CommitInfo>;

  /**
   * What changed from commit `from` to commit `to` (or to a volume's live state), sorted by
   * path: see FileChange. Read-only as seen by every other method (a live volume's dirty
   * state is unchanged by it). Cost grows with the number of changed entries, not with the
   * volume's size. COMMIT_NOT_FOUND / BRANCH_NOT_FOUND when a side does not exist.
   */
  diff(from: CommitRef, to: CommitRef | LiveRef): Promise<FileChange[]>;
}

/** How a driver moves a commit stream over a socket itself (exportCommitTo, importCommitFrom). */
export interface SocketTransferOptions {
  /** A socket on which no byte moves for this long fails the transfer (UNAVAILABLE). */
  readonly idleTimeoutMs: number;
  /** Framed bytes moved so far, called as they grow. */
  readonly onProgress?: (bytes: number) => void;
  /**
   * TLS spoken on the socket by the driver's own process: the socket is plain TCP up to its
   * first TLS byte, and Node neither reads nor writes it (see StreamTls).
   */
  readonly tls?: StreamTls;
}

/**
 * TLS 1.3 on a commit stream's own connection, ended by the storage driver's process rather
 * than Node, with Node's trust rules (@dotmesh/rpc tls.ts). The handshake, every check of the
 * peer and the stream key come before any byte of the stream: an untrusted peer, a failed
 * handshake or a wrong key fail with PERMISSION_DENIED, a handshake that takes longer than
 * `handshakeTimeoutMs` with UNAVAILABLE.
 */
export type StreamTls = StreamTlsClient | StreamTlsServer;

/** The dialling end (the socket is connected, nothing written yet). */
export interface StreamTlsClient {
  readonly role: 'client';
  /** The server's host name or address: sent as SNI (names only) and checked when trusted by CAs. */
  readonly serverName: string;
  /** Pinned leaf certificate (SHA-256 of its DER, `AB:CD:…`), or pinned cluster CA (`sha256:<hex>` of its SubjectPublicKeyInfo), or CAs (a PEM file; the system's when absent) with the name check. */
  readonly trust: { readonly certSha256: string } | { readonly caPin: string } | { readonly caFile?: string };
  /** A certificate (PEM chain) and key to present: mutual TLS between the nodes of a cluster. */
  readonly identity?: { readonly certFile: string; readonly keyFile: string };
  /** The ALPN protocol the server must agree to. */
  readonly alpn: string;
  /** STREAM_KEY_BYTES random bytes the control call gave: sent first, inside TLS. */
  readonly streamKey: Buffer;
  readonly handshakeTimeoutMs?: number;
}

/** The accepting end (the socket was accepted; `peeked` holds what was already read of it). */
export interface StreamTlsServer {
  readonly role: 'server';
  readonly identity: { readonly certFile: string; readonly keyFile: string };
  /** Mutual TLS: the client must present a certificate issued by a CA of this PEM file. */
  readonly clientCaFile?: string;
  /** The ALPN protocol the client must offer. */
  readonly alpn: string;
  /** Bytes already read from the socket (the ClientHello a listener looked at), up to 16.5 KiB. */
  readonly peeked?: Buffer;
  /** The key the client must send first: ties the connection to the transfer its control call set up. */
  readonly streamKey: Buffer;
  readonly handshakeTimeoutMs?: number;
}

/** Length of a StreamTls stream key. */
export const STREAM_KEY_BYTES = 32;

/** The live (writable) state of a volume, as a side of `diff`. */
export interface LiveRef {
  readonly volumeId: string;
  readonly live: true;
}

/**
 * One changed entry (file, directory, symlink, ...) between two states, path relative to the
 * volume root, `/`-separated, without the driver's own `dotmesh.metadata/` files.
 * `+` added, `-` removed, `M` content or attributes changed (an entry replaced by another at
 * the same path is `M` too), `R` moved from `filename` to `to` (content may also have
 * changed). Directories appear when added, removed, moved or their attributes change; a
 * directory whose only change is its entries' is not listed. Times alone (touch) are no change.
 */
export interface FileChange {
  readonly change: '+' | 'M' | '-' | 'R';
  readonly filename: string;
  /** New path of a moved entry (`R` only). */
  readonly to?: string;
}

export interface CommitRef {
  readonly volumeId: string;
  readonly commitId: string;
}

/** Opaque JSON object owned by the server. */
export type VolumeLabel = Record<string, unknown>;
/** Opaque JSON object owned by the server; travels inside the commit. */
export type CommitMeta = Record<string, unknown>;

export interface VolumeInfo {
  readonly id: string;
  readonly label: VolumeLabel;
}

export interface CommitInfo {
  readonly id: string;
  readonly meta: CommitMeta;
  /** Append order within the volume: strictly increasing, never reused. */
  readonly seq: number;
}

export interface VolumeSizes {
  /** Bytes of data the live state references. */
  readonly referencedBytes: number;
  /** True when the live state may differ from its newest commit (never false after a write). */
  readonly dirty: boolean;
  /** Estimate of bytes written since the newest commit (0 when clean). */
  readonly dirtyBytes: number;
}

export interface CommitSizes {
  /** Bytes of data the commit references, shared or not. */
  readonly referencedBytes: number;
  /** Bytes only this commit references: what deleting it frees. */
  readonly exclusiveBytes: number;
}

export interface PoolInfo {
  readonly poolId: string;
  readonly formatVersion: number;
  readonly totalBytes: number;
  readonly freeBytes: number;
}

/** What `open()` found and fixed; the server logs each entry. */
export interface RecoveryReport {
  readonly actions: readonly string[];
}
