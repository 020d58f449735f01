import { randomBytes } from 'node:crypto';
import { DotmeshError } from '@dotmesh/core';

/**
 * Every id the storage layer turns into a path component must match this: it can never be
 * empty, `.`/`..`, or contain `/` or NUL, so no path built from it escapes the pool.
 * (UUIDs match it too.)
 */
export const STORAGE_ID_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

export function checkVolumeId(id: unknown): string {
  if (typeof id !== 'string' || !STORAGE_ID_PATTERN.test(id)) {
    throw new DotmeshError('INVALID_ARGUMENT', `invalid volume id ${JSON.stringify(String(id)).slice(0, 100)}`, {
      hint: 'volume ids are UUIDs or match ^[a-zA-Z0-9_-]{1,64}$',
    });
  }
  return id;
}

export function checkCommitId(id: unknown): string {
  if (typeof id !== 'string' || !STORAGE_ID_PATTERN.test(id)) {
    throw new DotmeshError('INVALID_ARGUMENT', `invalid commit id ${JSON.stringify(String(id)).slice(0, 100)}`, {
      hint: 'commit ids are UUIDs or match ^[a-zA-Z0-9_-]{1,64}$',
    });
  }
  return id;
}

/** Id of one in-progress operation (a staging directory name). */
export function newOpId(): string {
  return `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}

/** 16 lowercase hex characters. */
export function newPoolId(): string {
  return randomBytes(8).toString('hex');
}

/**
 * Segments of a relative path inside a volume; INVALID_ARGUMENT for absolute paths, empty,
 * `.` or `..` segments and NUL, so the path cannot leave the volume lexically.
 */
export function checkRelPath(relPath: unknown): string[] {
  const parts = typeof relPath === 'string' ? relPath.split('/') : [];
  if (parts.length === 0 || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\0'))) {
    throw new DotmeshError('INVALID_ARGUMENT', `invalid path ${JSON.stringify(String(relPath)).slice(0, 200)} inside a volume`, {
      hint: 'use a relative path without empty, "." or ".." segments',
    });
  }
  return parts;
}
