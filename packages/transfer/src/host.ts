import type { TransferSide } from './side.ts';

/**
 * What the transfer package needs from the server that hosts it (its ports). The package
 * moves commits and decides what to send; the host owns the dots: every change a transfer
 * makes to a dot is made by the host's side (`localSide`), through the host's one mutation
 * path. Nothing in this package writes a pool, a label or a dot's keys in the store.
 */

/** Log lines (pino-compatible: the structured fields first, then the message). */
export interface TransferLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * Who a transfer acts for, as the host authenticated it. The package reads only `id` (the
 * owner of a transfer record) and hands the caller back to the host's ports, which decide
 * what it may do.
 */
export interface TransferCaller {
  readonly id: string;
}

/** The failpoints of the transfer engine (crash and fault tests); both are no-ops unless armed. */
export interface TransferFailpoints {
  /** After each commit the receiver made durable: crashes the process when armed. */
  hit(name: 'transfer.after-commit'): void;
  /** Whether the next export must be corrupted (consumes the armed failpoint). */
  take(name: 'transfer.corrupt-stream'): boolean;
}

/** How the host's own side of a transfer behaves (see TransferHost.localSide). */
export interface LocalSideOptions {
  /**
   * The commits come from the branch's master node (a handoff, replication): the receiving
   * node keeps a replica. It needs no mastership to take them and claims nothing in the store
   * (no name, no clone record, no master key): it only advertises what it holds, as an
   * inactive copy.
   */
  readonly replica: boolean;
  /** A socket the storage driver reads or writes itself fails after this long without a byte. */
  readonly idleTimeoutMs: () => number;
  /** Test hook: true when the next export must have a byte flipped after it was checksummed. */
  readonly corrupt: () => boolean;
  /** Whether this server's endpoints take upgraded commit streams (peer-streams.ts), for hello. */
  readonly streamUpgrade: boolean;
}

/** The server hosting the transfer engine. */
export interface TransferHost<C extends TransferCaller> {
  /** This node's id: it owns the transfer records it starts (records.ts). */
  readonly nodeId: string;
  /** The storage driver's kind: commit streams only move between drivers of the same kind. */
  readonly driverKind: string;
  readonly logger: TransferLogger;
  readonly failpoints: TransferFailpoints;
  /** The cluster itself, sending to its own nodes (handoff, replication): admin's rights. */
  readonly clusterCaller: C;
  /** Whether `caller` may read every transfer record. */
  isAdmin(caller: C): boolean;
  /**
   * This server as one end of a transfer, acting with `caller`'s rights: the same operations,
   * checks and errors as a peer's side (side.ts). Every change it makes to a dot (a received
   * commit, a branch, a stash, a commit of dirty data) goes through the host's one mutation
   * path, with its locks, mastership checks, store transaction and undo.
   */
  localSide(caller: C, options: LocalSideOptions): TransferSide;
  /** How a dot and one of its branches are named here, or undefined when either is not here. */
  branchNames(dotId: string, fsId: string): { namespace: string; name: string; branch: string } | undefined;
}
