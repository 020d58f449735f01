import { DotmeshError } from '@dotmesh/core';
import type { BackupClone, BackupFilesystemMaster, BackupRegistryFilesystem, BackupUser, BackupV1 } from '@dotmesh/rpc';
import type { Store } from '@dotmesh/store';
import type { UserRecord, UserService } from '../auth/users.ts';
import { PREFIX } from '../cluster/store-keys.ts';
import type { DotIndex } from '../dots/dot-index.ts';

/**
 * DumpEtcd / RestoreEtcd over any Store (embedded or etcd), in the original's BackupV1 shape.
 *
 * The store keys read are the original's (§8): `users/users/<id>`,
 * `filesystems/masters/<fsId>`, `registry/filesystems/<ns>/<name>` and
 * `registry/clones/<dotId>/<branch>`, all under `dotmesh.io/`.
 *
 * Restore semantics: users are written back as they were (salt, password hash, API key,
 * metadata; the admin too), so credentials survive a lost store. Dots, branches and masters
 * are NOT written: the pool is authoritative and the server mirrors it into the store itself;
 * restore only compares the dump's registry with the pool and returns every mismatch (the
 * caller logs them).
 */
const USERS = `${PREFIX}users/users/`;
const MASTERS = `${PREFIX}filesystems/masters/`;
const REGISTRY = `${PREFIX}registry/filesystems/`;
const CLONES = `${PREFIX}registry/clones/`;

/** The original's default is "" (its own prefix); ours is fixed, so only spellings of it are accepted. */
export function checkBackupPrefix(prefix: string): void {
  const normal = prefix.replace(/^\/+/, '').replace(/\/+$/, '');
  if (normal === '' || `${normal}/` === PREFIX) return;
  throw new DotmeshError('INVALID_ARGUMENT', `unsupported backup prefix ${JSON.stringify(prefix)}`, {
    hint: `use "" (the server keeps everything under ${PREFIX})`,
  });
}

export async function dumpStore(store: Store, now: Date): Promise<BackupV1> {
  const values = async <T>(prefix: string): Promise<T[]> =>
    (await store.range(prefix)).kvs.flatMap((kv) => {
      try {
        return [JSON.parse(kv.value) as T];
      } catch {
        return [];
      }
    });
  const users = (await values<UserRecord>(USERS)).map(
    (u): BackupUser => ({
      Id: u.Id,
      Name: u.Name,
      Email: u.Email,
      Salt: u.Salt,
      Password: u.Password,
      ApiKey: u.ApiKey,
      Metadata: { ...u.Metadata },
    }),
  );
  return {
    version: 'v1',
    created: now.toISOString(),
    users,
    filesystem_masters: await values<BackupFilesystemMaster>(MASTERS),
    registry_filesystems: await values<BackupRegistryFilesystem>(REGISTRY),
    registry_clones: await values<BackupClone>(CLONES),
  };
}

/** Writes the dump's users back (replacing same-id users). Returns the ids restored. */
export async function restoreUsers(users: UserService, dump: BackupV1): Promise<string[]> {
  const restored: string[] = [];
  for (const u of dump.users ?? []) {
    await users.save({
      Id: u.Id,
      Name: u.Name,
      Email: u.Email,
      Salt: toHex(u.Salt),
      Password: toHex(u.Password),
      ApiKey: u.ApiKey,
      Metadata: { ...(u.Metadata ?? {}) },
    });
    restored.push(u.Id);
  }
  return restored;
}

/** Every way the dump's registry differs from the pool's index, one sentence each. */
export function registryMismatches(index: DotIndex, dump: BackupV1): string[] {
  const out: string[] = [];
  for (const fs of dump.registry_filesystems ?? []) {
    const name = `${fs.Name.Namespace}/${fs.Name.Name}`;
    const id = index.dotIdByName(fs.Name.Namespace, fs.Name.Name);
    if (id === undefined) out.push(`dot ${name} (${fs.Id}) is in the dump but not in the pool`);
    else if (id !== fs.Id) out.push(`dot ${name} is ${fs.Id} in the dump but ${id} in the pool`);
  }
  for (const clone of dump.registry_clones ?? []) {
    const fsId = index.dots.get(clone.TopLevelFilesystemId)?.branches.get(clone.Name);
    if (fsId === undefined) {
      out.push(
        `branch ${clone.Name} (${clone.FilesystemId}) of dot ${clone.TopLevelFilesystemId} is in the dump but not in the pool`,
      );
    } else if (fsId !== clone.FilesystemId) {
      out.push(
        `branch ${clone.Name} of dot ${clone.TopLevelFilesystemId} is ${clone.FilesystemId} in the dump but ${fsId} in the pool`,
      );
    }
  }
  for (const m of dump.filesystem_masters ?? []) {
    if (!index.branches.has(m.filesystem_id))
      out.push(`filesystem ${m.filesystem_id} has a master in the dump but is not in the pool`);
  }
  return out;
}

/** Hashes are hex here; the original's backups hold them base64 ([]byte in Go JSON). */
function toHex(value: string): string {
  if (value === '' || /^[0-9a-f]*$/.test(value)) return value;
  return Buffer.from(value, 'base64').toString('hex');
}
