import { DatabaseSync } from 'node:sqlite';
import { DotmeshError } from '@dotmesh/core';

/** Format of the store file; a file with another format is refused, never migrated silently. */
export const STORE_FORMAT = 'dotmesh-store/1';

/**
 * On-disk layout (one sqlite file, WAL journal):
 * - meta(name, value): 'format', 'revision' (last write), 'compacted' (history ≤ it is gone)
 * - kv: the current keys with etcd's bookkeeping; lease NULL when none
 * - events: the write history for resumable watches, `seq` orders a revision's events
 * - leases: expires_at in wall-clock milliseconds
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value ANY) STRICT;
CREATE TABLE IF NOT EXISTS kv (
  key TEXT PRIMARY KEY, value TEXT NOT NULL, create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL, version INTEGER NOT NULL, lease TEXT) STRICT;
CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
  revision INTEGER NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
  PRIMARY KEY (revision, seq)) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, ttl_seconds INTEGER NOT NULL, expires_at INTEGER NOT NULL) STRICT;
CREATE INDEX IF NOT EXISTS leases_expiry ON leases (expires_at);
INSERT OR IGNORE INTO meta (name, value) VALUES ('format', '${STORE_FORMAT}'), ('revision', 0), ('compacted', 0);
`;

const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_NOTADB = 26;

/**
 * Opens the file as the only user: EXCLUSIVE locking mode set before WAL is entered means
 * no shared memory and a file lock held from the first write until close, so a second
 * opener (another process or this one) fails at once with IN_USE instead of waiting.
 * synchronous=FULL fsyncs the WAL at each commit: a resolved write survives kill -9 and
 * power loss. Creates the schema when missing and checks the format.
 */
export function openDatabase(path: string): DatabaseSync {
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { timeout: 0 });
    db.exec('PRAGMA locking_mode = EXCLUSIVE');
    const mode = db.prepare('PRAGMA journal_mode = WAL').get()?.journal_mode;
    if (mode !== 'wal') throw new Error(`sqlite refused WAL journal mode (got ${String(mode)})`);
    db.exec('PRAGMA synchronous = FULL');
    db.exec(`BEGIN IMMEDIATE; ${SCHEMA} COMMIT;`);
    const format = db.prepare("SELECT value FROM meta WHERE name = 'format'").get()?.value;
    if (format !== STORE_FORMAT) {
      throw new DotmeshError('UNSUPPORTED', `store file ${path} has format ${String(format)}, expected ${STORE_FORMAT}`, {
        hint: 'use a dotmesh version that knows this format, or move the file away to start empty',
      });
    }
    return db;
  } catch (error) {
    try {
      db?.close();
    } catch {
      // Already failing; the original error says more.
    }
    throw openError(path, error);
  }
}

function openError(path: string, error: unknown): unknown {
  if (error instanceof DotmeshError) return error;
  const errcode = (error as { errcode?: number }).errcode;
  if (errcode === SQLITE_BUSY || errcode === SQLITE_LOCKED) {
    return new DotmeshError('IN_USE', `store file ${path} is in use by another process (or another store in this one)`, {
      hint: 'only one dotmesh server may use a store file at a time; stop the other one',
      cause: error,
    });
  }
  if (errcode === SQLITE_NOTADB) {
    return new DotmeshError('INVALID_ARGUMENT', `${path} is not a dotmesh store file`, { cause: error });
  }
  return new DotmeshError('UNAVAILABLE', `cannot open store file ${path}: ${(error as Error).message}`, { cause: error });
}
