import type { CommitMetadata } from './metadata.ts';

/**
 * The domain model. Ids are global (a dot and its branches keep their ids when moved
 * between clusters); names are for people and live only in records, never in paths.
 *
 * - A dot's id is the id of its master branch's filesystem, as in the original.
 * - Every branch (master included) is a "filesystem" with its own id, live state and
 *   commits; a non-master branch starts from an origin commit of another filesystem.
 */
export interface DotRecord {
  readonly id: string;
  readonly namespace: string;
  readonly name: string;
  /** User id of the owner (the namespace's user). */
  readonly ownerId: string;
  readonly collaboratorIds: readonly string[];
  readonly createdAt: string;
  readonly forkParentId?: string;
  readonly forkParentSnapshotId?: string;
}

export interface CommitOrigin {
  readonly fsId: string;
  readonly commitId: string;
}

export interface BranchRecord {
  /** The branch's filesystem id. */
  readonly id: string;
  readonly dotId: string;
  /** "master" for the dot's master branch. */
  readonly name: string;
  readonly origin: CommitOrigin | null;
  readonly createdAt: string;
}

/** A commit as the API shows it: id plus string metadata (message, author, timestamp, …). */
export interface CommitRecord {
  readonly id: string;
  readonly metadata: CommitMetadata;
}

/** Metadata keys the server sets on every commit. */
export const META_MESSAGE = 'message';
export const META_AUTHOR = 'author';
export const META_TIMESTAMP = 'timestamp';
export const META_TYPE = 'type';
export const INITIAL_COMMIT_MESSAGE = 'Initial commit';
export const INITIAL_COMMIT_TYPE = 'dotmesh.initial';

/** The original's fixed ids. */
export const ADMIN_USER_ID = '00000000-0000-0000-0000-000000000000';
export const ADMIN_USER_NAME = 'admin';
