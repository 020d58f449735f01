import { DotmeshError } from '@dotmesh/core';
import type { Clock } from '../engine/clock.ts';
import { StoreEngine } from '../engine/engine.ts';
import type { StoreLogger } from '../engine/logger.ts';
import { MemoryBackend } from './memory-backend.ts';

export interface MemoryStoreOptions {
  readonly clock?: Clock;
  readonly logger?: StoreLogger;
  /** Revisions of history kept for watches from an older revision; default 10,000. */
  readonly historyRevisions?: number;
  readonly newLeaseId?: () => string;
  /** Reuse the contents of an earlier store (`earlier.backend`): a restart in memory. */
  readonly backend?: MemoryBackend;
}

/**
 * The Store contract in memory, with the same semantics as EmbeddedStore (the same engine)
 * but no persistence: for fast tests of the layers above.
 */
export class MemoryStore extends StoreEngine {
  constructor(options: MemoryStoreOptions = {}) {
    const historyRevisions = options.historyRevisions ?? 10_000;
    if (!Number.isSafeInteger(historyRevisions) || historyRevisions < 1) {
      throw new DotmeshError('INVALID_ARGUMENT', `historyRevisions must be a positive integer, got ${historyRevisions}`);
    }
    const backend = options.backend ?? new MemoryBackend({ historyRevisions });
    super(backend, options);
    this.backend = backend;
  }

  /** The contents, for `new MemoryStore({ backend })` after close (tests of restarts). */
  readonly backend: MemoryBackend;

  static async open(options: MemoryStoreOptions = {}): Promise<MemoryStore> {
    return new MemoryStore(options);
  }
}
