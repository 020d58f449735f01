import type { Readable } from 'node:stream';
import { type CommitOrigin, DotmeshError, MASTER_BRANCH } from '@dotmesh/core';
import { flipOnePayloadByte } from '@dotmesh/storage';
import {
  type CommitStream,
  type Hello,
  type IncomingCommit,
  type IncomingVolume,
  type LocalSideOptions,
  PROTOCOL_NAME,
  PROTOCOL_VERSIONS,
  STREAM_UPGRADE_CAPABILITY,
  type StateOptions,
  type TransferSide,
  type WireDot,
} from '@dotmesh/transfer';
import { type Caller, canAccess } from '../dots/caller.ts';
import { commitBranch } from '../dots/commit.ts';
import type { DotContext } from '../dots/context.ts';
import type { CommitInput } from '../dots/mutation/tx.ts';
import { describeDot } from './describe-dot.ts';
import { ensureVolume, incomingDot } from './incoming.ts';
import { type ReceiveDeps, receiveCommit } from './receive-commit.ts';
import { stashAfter, stashBranch } from './stash.ts';

export const DIRTY_STASH_MESSAGE = 'committing dirty data ready for stashing';

/**
 * This server as one end of a transfer, acting with `caller`'s rights (the host's side of
 * @dotmesh/transfer, TransferHost.localSide): every change it makes goes through the mutation
 * path (receiveCommit, ensureVolume, stash, commitBranch run in `ctx.mutations`).
 */
export class LocalSide implements TransferSide {
  readonly label = 'this server';
  readonly #ctx: DotContext;
  readonly #caller: Caller;
  readonly #deps: ReceiveDeps;
  readonly #options: Omit<LocalSideOptions, 'replica'>;

  constructor(ctx: DotContext, caller: Caller, deps: ReceiveDeps, options: Omit<LocalSideOptions, 'replica'>) {
    this.#ctx = ctx;
    this.#caller = caller;
    this.#deps = deps;
    this.#options = options;
  }

  async hello(): Promise<Hello> {
    return {
      protocol: PROTOCOL_NAME,
      versions: [...PROTOCOL_VERSIONS],
      nodeId: this.#ctx.nodeId,
      driver: this.#ctx.storage.kind,
      capabilities: [
        'crc32-frames',
        'stash',
        'hidden-commits',
        ...(this.#options.streamUpgrade ? [STREAM_UPGRADE_CAPABILITY] : []),
      ],
    };
  }

  async state(namespace: string, name: string, o: StateOptions = {}): Promise<WireDot | null> {
    const id = this.#ctx.index.dotIdByName(namespace, name);
    const dot = id === undefined ? undefined : this.#ctx.index.dots.get(id);
    if (!dot || !canAccess(this.#caller, dot.info)) return null;
    return describeDot(this.#ctx, dot.id, { usage: o.usage !== false });
  }

  /**
   * The storage driver's export; on a plain TCP socket the driver writes it itself when it
   * can. While the corruption failpoint is armed, the stream goes through Node, which flips a
   * byte of it after it was checksummed.
   */
  async exportCommit(fsId: string, commitId: string, parent: CommitOrigin | null): Promise<CommitStream> {
    this.#requireReadable(fsId, commitId, parent);
    const storage = this.#ctx.storage;
    const options = parent ? { parent: { volumeId: parent.fsId, commitId: parent.commitId } } : {};
    const corrupt = this.#options.corrupt();
    let stream: Readable | undefined;
    const open = () => {
      const source = storage.exportCommit(fsId, commitId, options);
      if (!corrupt) return source;
      const flipped = flipOnePayloadByte();
      source.on('error', (e) => flipped.destroy(e));
      flipped.once('close', () => source.destroy());
      return source.pipe(flipped);
    };
    return {
      readable: () => {
        stream ??= open();
        return stream;
      },
      ...(storage.exportCommitTo && !corrupt
        ? { writeTo: (socket, o) => storage.exportCommitTo!(fsId, commitId, socket, { ...o, ...options }) }
        : {}),
      close: () => stream?.destroy(),
    } satisfies CommitStream;
  }

  async predictSize(fsId: string, commitId: string, parent: CommitOrigin | null): Promise<number> {
    this.#requireReadable(fsId, commitId, parent);
    const sizes = await this.#ctx.storage.commitSizes(fsId);
    const s = sizes.get(commitId);
    if (!s) return 0;
    return parent ? s.exclusiveBytes : s.referencedBytes;
  }

  /**
   * A stream on a connection of its own goes to the mutation as that connection (the storage
   * driver's own process reads a plain TCP socket, see tx.importCommit); a stream inside an
   * HTTP body is read through Node.
   */
  async receiveCommit(c: IncomingCommit, stream: CommitStream, onProgress: (bytes: number) => void): Promise<void> {
    const on = stream.socket;
    const idleTimeoutMs = this.#options.idleTimeoutMs();
    const input: CommitInput = stream.data
      ? { data: stream.data, idleTimeoutMs, onProgress }
      : on
        ? { socket: on.socket, onReady: () => on.start(), idleTimeoutMs, onProgress }
        : { stream: stream.readable(), onProgress };
    await receiveCommit(this.#ctx, this.#deps, this.#caller, c, input);
  }

  async ensureBranch(v: IncomingVolume): Promise<void> {
    if (v.branch === MASTER_BRANCH) {
      throw new DotmeshError('INVALID_ARGUMENT', 'a master branch arrives with its commits, not on its own');
    }
    incomingDot(this.#ctx, this.#caller, v);
    await this.#ctx.mutations.run(
      {
        op: 'receive',
        what: `create branch ${v.branch} of ${v.dot.namespace}/${v.dot.name}`,
        dotId: v.dot.id,
        dotLock: 'exclusive',
        queues: [v.fsId],
      },
      async (tx) => {
        const dot = incomingDot(this.#ctx, this.#caller, v);
        await ensureVolume(this.#ctx, tx, v, dot, dot?.info.ownerId ?? '', this.#deps.replica === true);
      },
    );
  }

  stash(fsId: string, common: string | null): Promise<string> {
    return stashAfter(this.#ctx, this.#caller, fsId, common);
  }

  stashBranch(fsId: string): Promise<string> {
    return stashBranch(this.#ctx, this.#caller, fsId);
  }

  async commitDirty(fsId: string): Promise<void> {
    const b = this.#ctx.index.branches.get(fsId);
    const dot = b ? this.#ctx.index.dots.get(b.label.dotId) : undefined;
    if (!b || !dot) throw new DotmeshError('DOT_NOT_FOUND', `No such filesystem id '${fsId}'`);
    await commitBranch(this.#ctx, this.#caller, {
      namespace: dot.info.namespace,
      name: dot.info.name,
      branch: b.label.branch,
      message: DIRTY_STASH_MESSAGE,
      metadata: {},
    });
  }

  /** The volume and commits must belong to one dot the caller may see. */
  #requireReadable(fsId: string, commitId: string, parent: CommitOrigin | null): void {
    const ctx = this.#ctx;
    const b = ctx.index.branches.get(fsId);
    const dot = b ? ctx.index.dots.get(b.label.dotId) : undefined;
    if (!b || !dot || !canAccess(this.#caller, dot.info)) {
      throw new DotmeshError('DOT_NOT_FOUND', `No such filesystem id '${fsId}'`);
    }
    if (!b.commits.some((c) => c.id === commitId)) {
      throw new DotmeshError('COMMIT_NOT_FOUND', `No commit ${commitId} in filesystem ${fsId}`);
    }
    if (parent) {
      const pb = ctx.index.branches.get(parent.fsId);
      if (!pb || pb.label.dotId !== dot.id || !pb.commits.some((c) => c.id === parent.commitId)) {
        throw new DotmeshError('COMMIT_NOT_FOUND', `No commit ${parent.commitId} in filesystem ${parent.fsId} of the same dot`);
      }
    }
  }
}
