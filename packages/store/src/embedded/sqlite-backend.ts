import type { DatabaseSync, SQLOutputValue, StatementSync } from 'node:sqlite';
import { DotmeshError } from '@dotmesh/core';
import type { Backend, Commit, LeaseRecord } from '../engine/backend.ts';
import type { KeyValue, WatchEvent } from '../store.ts';
import { openDatabase } from './schema.ts';

type Row = Record<string, SQLOutputValue>;

/**
 * Backend on one sqlite file (layout in schema.ts). Each `apply` is one sqlite transaction,
 * durable at COMMIT. The revision and compaction point are cached: this process is the only
 * writer (the file lock guarantees it). History older than `historyRevisions` revisions is
 * deleted in the same transaction that writes the new revision.
 */
export class SqliteBackend implements Backend {
  readonly #db: DatabaseSync;
  readonly #path: string;
  readonly #historyRevisions: number;
  readonly #sql: Record<keyof typeof STATEMENTS, StatementSync>;
  #revision: number;
  #compacted: number;

  constructor(path: string, options: { historyRevisions: number }) {
    this.#path = path;
    this.#historyRevisions = options.historyRevisions;
    this.#db = openDatabase(path);
    const prepared: Partial<Record<keyof typeof STATEMENTS, StatementSync>> = {};
    for (const [name, sql] of Object.entries(STATEMENTS)) prepared[name as keyof typeof STATEMENTS] = this.#db.prepare(sql);
    this.#sql = prepared as Record<keyof typeof STATEMENTS, StatementSync>;
    this.#revision = this.#meta('revision');
    this.#compacted = this.#meta('compacted');
  }

  revision(): number {
    return this.#revision;
  }

  compactedRevision(): number {
    return this.#compacted;
  }

  get(key: string): KeyValue | undefined {
    const row = this.#sql.getKv.get(key);
    return row === undefined ? undefined : toKeyValue(row);
  }

  range(prefix: string): KeyValue[] {
    // Keys with a prefix are contiguous in BINARY order, starting at the prefix itself.
    const kvs: KeyValue[] = [];
    for (const row of this.#sql.rangeFrom.iterate(prefix)) {
      const kv = toKeyValue(row);
      if (!kv.key.startsWith(prefix)) break;
      kvs.push(kv);
    }
    return kvs;
  }

  keysWithLease(leaseId: string): string[] {
    return this.#sql.keysWithLease.all(leaseId).map((row) => row.key as string);
  }

  lease(leaseId: string): LeaseRecord | undefined {
    const row = this.#sql.getLease.get(leaseId);
    if (row === undefined) return undefined;
    return { id: row.id as string, ttlSeconds: row.ttl_seconds as number, expiresAt: row.expires_at as number };
  }

  dueLeases(now: number): string[] {
    return this.#sql.dueLeases.all(now).map((row) => row.id as string);
  }

  nextLeaseExpiry(): number | undefined {
    const t = this.#sql.nextExpiry.get()?.t;
    return typeof t === 'number' ? t : undefined;
  }

  eventsAfter(afterRevision: number, prefix: string): WatchEvent[] {
    const events: WatchEvent[] = [];
    for (const row of this.#sql.eventsAfter.iterate(afterRevision)) {
      const key = row.key as string;
      if (!key.startsWith(prefix)) continue;
      const revision = row.revision as number;
      events.push(
        Object.freeze(
          row.type === 'put' ? { type: 'put', key, value: row.value as string, revision } : { type: 'delete', key, revision },
        ),
      );
    }
    return events;
  }

  apply(commit: Commit): void {
    const sql = this.#sql;
    let compacted = this.#compacted;
    try {
      this.#db.exec('BEGIN IMMEDIATE');
      for (const kv of commit.puts) {
        sql.upsertKv.run(kv.key, kv.value, kv.createRevision, kv.modRevision, kv.version, kv.lease ?? null);
      }
      for (const key of commit.deletes) sql.deleteKv.run(key);
      commit.events.forEach((e, seq) => {
        sql.insertEvent.run(e.revision, seq, e.type, e.key, e.value ?? null);
      });
      if (commit.revision !== this.#revision) {
        sql.setMeta.run('revision', commit.revision);
        const floor = commit.revision - this.#historyRevisions;
        if (floor > compacted) {
          sql.compactEvents.run(floor);
          sql.setMeta.run('compacted', floor);
          compacted = floor;
        }
      }
      for (const lease of commit.leaseUpserts) sql.upsertLease.run(lease.id, lease.ttlSeconds, lease.expiresAt);
      for (const id of commit.leaseDeletes) sql.deleteLease.run(id);
      this.#db.exec('COMMIT');
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw new DotmeshError('UNAVAILABLE', `writing store file ${this.#path} failed: ${(error as Error).message}`, {
        hint: 'check free space and the health of the disk holding the store file',
        cause: error,
      });
    }
    this.#revision = commit.revision;
    this.#compacted = compacted;
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  #meta(name: string): number {
    const value = this.#sql.getMeta.get(name)?.value;
    if (typeof value !== 'number') throw new DotmeshError('INTERNAL', `store file ${this.#path}: meta ${name} is missing`);
    return value;
  }
}

const KV_COLUMNS = 'key, value, create_revision, mod_revision, version, lease';

const STATEMENTS = {
  getMeta: 'SELECT value FROM meta WHERE name = ?',
  setMeta: 'INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
  getKv: `SELECT ${KV_COLUMNS} FROM kv WHERE key = ?`,
  rangeFrom: `SELECT ${KV_COLUMNS} FROM kv WHERE key >= ? ORDER BY key`,
  keysWithLease: 'SELECT key FROM kv WHERE lease = ? ORDER BY key',
  upsertKv: `INSERT INTO kv (${KV_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET
    value = excluded.value, create_revision = excluded.create_revision, mod_revision = excluded.mod_revision,
    version = excluded.version, lease = excluded.lease`,
  deleteKv: 'DELETE FROM kv WHERE key = ?',
  insertEvent: 'INSERT INTO events (revision, seq, type, key, value) VALUES (?, ?, ?, ?, ?)',
  eventsAfter: 'SELECT revision, type, key, value FROM events WHERE revision > ? ORDER BY revision, seq',
  compactEvents: 'DELETE FROM events WHERE revision <= ?',
  getLease: 'SELECT id, ttl_seconds, expires_at FROM leases WHERE id = ?',
  upsertLease: `INSERT INTO leases (id, ttl_seconds, expires_at) VALUES (?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET ttl_seconds = excluded.ttl_seconds, expires_at = excluded.expires_at`,
  deleteLease: 'DELETE FROM leases WHERE id = ?',
  dueLeases: 'SELECT id FROM leases WHERE expires_at <= ? ORDER BY expires_at, id',
  nextExpiry: 'SELECT MIN(expires_at) AS t FROM leases',
} as const;

function toKeyValue(row: Row): KeyValue {
  const kv = {
    key: row.key as string,
    value: row.value as string,
    createRevision: row.create_revision as number,
    modRevision: row.mod_revision as number,
    version: row.version as number,
  };
  return row.lease === null ? kv : { ...kv, lease: row.lease as string };
}
