import { DotmeshError } from '@dotmesh/core';
import type { Clock } from '../engine/clock.ts';
import { StoreEngine } from '../engine/engine.ts';
import type { StoreLogger } from '../engine/logger.ts';
import { SqliteBackend } from './sqlite-backend.ts';
import { ensureStoreFile } from './store-file.ts';

/** How many recent revisions of history are kept for resumable watches, by default. */
export const DEFAULT_HISTORY_REVISIONS = 10_000;

export interface EmbeddedStoreOptions {
  /** The store file; created 0600 (its directory 0700) when missing. */
  readonly path: string;
  readonly clock?: Clock;
  readonly logger?: StoreLogger;
  /** Revisions of history kept for watches from an older revision; default 10,000. */
  readonly historyRevisions?: number;
  readonly newLeaseId?: () => string;
}

/**
 * The single-node store: the Store contract persisted to one sqlite file. Exactly one
 * EmbeddedStore may have a file open; a second open (any process) fails with IN_USE until
 * the first closes or its process dies. Writes resolve once durable.
 */
export class EmbeddedStore extends StoreEngine {
  readonly path: string;

  private constructor(backend: SqliteBackend, options: EmbeddedStoreOptions) {
    super(backend, options);
    this.path = options.path;
  }

  static async open(options: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    const historyRevisions = options.historyRevisions ?? DEFAULT_HISTORY_REVISIONS;
    if (!Number.isSafeInteger(historyRevisions) || historyRevisions < 1) {
      throw new DotmeshError('INVALID_ARGUMENT', `historyRevisions must be a positive integer, got ${historyRevisions}`);
    }
    ensureStoreFile(options.path);
    const backend = new SqliteBackend(options.path, { historyRevisions });
    try {
      return new EmbeddedStore(backend, options);
    } catch (error) {
      backend.close();
      throw error;
    }
  }
}
