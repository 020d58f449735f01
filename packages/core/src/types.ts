import type { CommitMetadata } from './metadata.ts';

/**
 * The domain model. Ids are global (a dot and its branches keep their ids when moved
 * between clusters); names are for people and live only in records, never in paths.
 *
 * - A dot's id is the id of its master branch's filesystem, as in the original.
 * - Every branch (master included) is a "filesystem" with its own id, live state and
 *   commits; a non-master branch starts from an origin commit of another filesystem.
 * The records themselves live beside the data in the pool: see the server's dots/labels.ts.
 */
export interface CommitOrigin {
  readonly fsId: string;
  readonly commitId: string;
}

/** A commit as the API shows it: id plus string metadata (message, author, timestamp, …). */
export interface CommitRecord {
  readonly id: string;
  readonly metadata: CommitMetadata;
}

export const INITIAL_COMMIT_MESSAGE = 'Initial commit';
export const INITIAL_COMMIT_TYPE = 'dotmesh.initial';

/** The original's fixed ids. */
export const ADMIN_USER_ID = '00000000-0000-0000-0000-000000000000';
export const ADMIN_USER_NAME = 'admin';
