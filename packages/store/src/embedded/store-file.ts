import { closeSync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Makes sure the store file exists with owner-only permissions: the parent directory is
 * created 0700 when missing, the file 0600 when missing (sqlite gives its -wal file the
 * same mode). An existing file or directory is left as it is. Idempotent; safe against a
 * concurrent creator (the loser finds the file there).
 */
export function ensureStoreFile(path: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw error;
  }
  closeSync(fd);
  // Make the new directory entry durable before anything is written into the file.
  const dirFd = openSync(dir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
