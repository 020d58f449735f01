import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type CommitOrigin, DotmeshError, MASTER_BRANCH } from '@dotmesh/core';
import { type Caller, canAccess } from '../dots/caller.ts';
import { commitBranch } from '../dots/commit.ts';
import type { DotContext } from '../dots/context.ts';
import { describeDot, type WireDot } from './dot-state.ts';
import { frameDecoder, frameEncoder, PIPELINE_HIGH_WATER_MARK } from './frames.ts';
import { ensureVolume, type IncomingVolume, incomingDot } from './incoming.ts';
import { type IncomingCommit, type ReceiveDeps, receiveCommit } from './receive-commit.ts';
import { type Hello, PROTOCOL_NAME, PROTOCOL_VERSIONS, type TransferSide } from './side.ts';
import { stashAfter, stashBranch } from './stash.ts';

export const DIRTY_STASH_MESSAGE = 'committing dirty data ready for stashing';

/** This server as one end of a transfer, acting with `caller`'s rights. */
export class LocalSide implements TransferSide {
  readonly label = 'this server';
  readonly #ctx: DotContext;
  readonly #caller: Caller;
  readonly #deps: ReceiveDeps;
  /** Test hook: the failpoint `transfer.corrupt-stream` flips a byte in the next export. */
  readonly #corrupt: () => boolean;

  constructor(ctx: DotContext, caller: Caller, deps: ReceiveDeps, corrupt: () => boolean = () => false) {
    this.#ctx = ctx;
    this.#caller = caller;
    this.#deps = deps;
    this.#corrupt = corrupt;
  }

  async hello(): Promise<Hello> {
    return {
      protocol: PROTOCOL_NAME,
      versions: [...PROTOCOL_VERSIONS],
      nodeId: this.#ctx.nodeId,
      driver: this.#ctx.storage.kind,
      capabilities: ['crc32-frames', 'stash', 'hidden-commits'],
    };
  }

  async state(namespace: string, name: string): Promise<WireDot | null> {
    const id = this.#ctx.index.dotIdByName(namespace, name);
    const dot = id === undefined ? undefined : this.#ctx.index.dots.get(id);
    if (!dot || !canAccess(this.#caller, dot.info)) return null;
    return describeDot(this.#ctx, dot.id);
  }

  async exportCommit(fsId: string, commitId: string, parent: CommitOrigin | null): Promise<Readable> {
    this.#requireReadable(fsId, commitId, parent);
    const source = this.#ctx.storage.exportCommit(
      fsId,
      commitId,
      parent ? { parent: { volumeId: parent.fsId, commitId: parent.commitId } } : {},
    );
    const framed = frameEncoder({ corrupt: this.#corrupt() });
    source.on('error', (e) => framed.destroy(e));
    framed.on('close', () => source.destroy());
    return source.pipe(framed);
  }

  async predictSize(fsId: string, commitId: string, parent: CommitOrigin | null): Promise<number> {
    this.#requireReadable(fsId, commitId, parent);
    const sizes = await this.#ctx.storage.commitSizes(fsId);
    const s = sizes.get(commitId);
    if (!s) return 0;
    return parent ? s.exclusiveBytes : s.referencedBytes;
  }

  async receiveCommit(c: IncomingCommit, framed: Readable): Promise<void> {
    const raw = new PassThrough({ highWaterMark: PIPELINE_HIGH_WATER_MARK });
    const decoding = pipeline(framed, frameDecoder(`commit ${c.commitId}`), raw);
    decoding.catch(() => undefined); // the receive below sees the same failure through `raw`
    // A commit already here is not read: drain the rest so the checksum is still verified.
    const receiving = receiveCommit(this.#ctx, this.#deps, this.#caller, c, raw).then((r) => {
      raw.resume();
      return r;
    });
    try {
      await Promise.all([receiving, decoding]);
    } catch (e) {
      // A stream the driver refused as malformed (our check, or btrfs receive's own CRCs) may
      // simply have been damaged on the way: read it to its end frame, and if the checksum
      // fails report that (retried) instead.
      if (!(e instanceof DotmeshError) || e.code === 'INVALID_ARGUMENT' || e.code === 'INTERNAL') {
        raw.resume();
        const damaged = await decoding.then(
          () => undefined,
          (d: unknown) => (d instanceof DotmeshError && d.code === 'TRANSFER_CORRUPT' ? d : undefined),
        );
        if (damaged) throw damaged;
      }
      framed.destroy();
      raw.destroy();
      throw e;
    }
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
