import { DotmeshError } from '@dotmesh/core';
import type { BackupClone, BackupFilesystemMaster, BackupRegistryFilesystem, BackupUser, BackupV1 } from '@dotmesh/rpc';
import type { Store, TxnOp } from '@dotmesh/store';
import { decodeUser, USERS, type UserRecord, unsealedApiKey } from '../auth/user-record.ts';
import type { UserService } from '../auth/users.ts';
import type { MasterNodes } from '../cluster/master-nodes.ts';
import { KEYS, PREFIX } from '../cluster/store-keys.ts';
import type { DotIndex } from '../dots/dot-index.ts';
import { absent, putMaster } from '../dots/mutation/store-writes.ts';

/**
 * DumpEtcd / RestoreEtcd over any Store (embedded or etcd), in the original's BackupV1 shape.
 *
 * The store keys read are the original's (§8): `users/users/<id>`,
 * `filesystems/masters/<fsId>`, `registry/filesystems/<ns>/<name>` and
 * `registry/clones/<dotId>/<branch>`, all under `dotmesh.io/`.
 *
 * Users are dumped as the store holds them: verifiers, never an API key or a password. Each
 * carries its password's scrypt salt and hash (hex), `ApiKey` "" (the original's field, kept
 * for its shape), and `ApiKeySalt`, `ApiKeyHmac` (the key's verifier) and `ApiKeySealed`
 * (the key sealed under the password, "" when the server cannot show it) — see
 * auth/secrets.ts.
 *
 * Restore semantics: users are written back as they were (the admin too), so credentials
 * survive a lost store; a user with a clear `ApiKey` (the original's backups) gets a verifier
 * of it instead, and base64 hashes (the original's `[]byte`) become hex. Dots and branches
 * are NOT written: the pool is authoritative and the server mirrors it into the store itself;
 * restore compares the dump's registry with the pool and returns every mismatch (the caller
 * logs them). Masters are written only where the store has none (restoreMasters).
 */
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
  const users = (await store.range(USERS)).kvs.flatMap((kv) => {
    const decoded = decodeUser(kv.value);
    return decoded ? [backupUser(decoded.user)] : [];
  });
  return {
    version: 'v1',
    created: now.toISOString(),
    users,
    filesystem_masters: await values<BackupFilesystemMaster>(MASTERS),
    registry_filesystems: await values<BackupRegistryFilesystem>(REGISTRY),
    registry_clones: await values<BackupClone>(CLONES),
  };
}

function backupUser(u: UserRecord): BackupUser {
  return {
    Id: u.Id,
    Name: u.Name,
    Email: u.Email,
    Salt: u.Salt,
    Password: u.Password,
    ApiKey: '',
    ApiKeySalt: u.ApiKeySalt,
    ApiKeyHmac: u.ApiKeyHmac,
    ApiKeySealed: u.ApiKeySealed,
    Metadata: { ...u.Metadata },
  };
}

/**
 * Writes the dump's users back (replacing same-id users). Every user is checked before any is
 * written: a dump with a malformed user changes nothing. Returns the ids restored.
 */
export async function restoreUsers(users: UserService, dump: BackupV1): Promise<string[]> {
  const records = (dump.users ?? []).map(restoredUser);
  for (const record of records) await users.save(record);
  return records.map((r) => r.Id);
}

const HEX_32_BYTES = /^[0-9a-f]{64}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function restoredUser(u: BackupUser): UserRecord {
  const bad = (what: string) =>
    new DotmeshError('INVALID_ARGUMENT', `user ${JSON.stringify(u.Name.slice(0, 80))} of the dump has ${what}`, {
      hint: "give the JSON printed by 'dm cluster backup-etcd' (or the original's DumpEtcd), unedited",
    });
  if (u.Id.includes('/') || u.Name.includes('/')) throw bad("a '/' in its id or name");
  const Salt = toHex(u.Salt);
  const Password = toHex(u.Password);
  if (Salt === undefined || Password === undefined) throw bad('a password salt or hash that is neither hex nor base64');
  const base = { Id: u.Id, Name: u.Name, Email: u.Email, Salt, Password, Metadata: { ...(u.Metadata ?? {}) } };
  if (u.ApiKey !== '') return { ...base, ...unsealedApiKey(u.Id, u.ApiKey) };
  const verifierOk =
    (u.ApiKeySalt === '' && u.ApiKeyHmac === '') || (HEX_32_BYTES.test(u.ApiKeySalt) && HEX_32_BYTES.test(u.ApiKeyHmac));
  if (!verifierOk) throw bad('a malformed API key verifier (ApiKeySalt, ApiKeyHmac: 64 hex digits each)');
  if (!BASE64.test(u.ApiKeySealed)) throw bad('a malformed ApiKeySealed (base64)');
  return { ...base, ApiKeySalt: u.ApiKeySalt, ApiKeyHmac: u.ApiKeyHmac, ApiKeySealed: u.ApiKeySealed };
}

/**
 * The dump's masterNodes, for the branches the store has no master key for: a restore never
 * moves a master. Each goes to the node the dump names if that node holds the branch (it
 * advertises `servers/states/<node>/<fsId>`), else to a node that holds it — this node first —
 * never to a node id that is not in this cluster (the original's node ids never are). A branch
 * no node holds gets no master. Created by compare-and-create, as a start-up claim. Returns
 * the masters written.
 */
export async function restoreMasters(
  store: Store,
  masterNodes: MasterNodes,
  dump: BackupV1,
): Promise<Array<{ fsId: string; nodeId: string; dumpNodeId: string }>> {
  const holders = new Map<string, string[]>();
  for (const kv of (await store.range(KEYS.statesPrefix)).kvs) {
    const [nodeId, fsId] = kv.key.slice(KEYS.statesPrefix.length).split('/');
    if (nodeId && fsId) holders.set(fsId, [...(holders.get(fsId) ?? []), nodeId]);
  }
  const written: Array<{ fsId: string; nodeId: string; dumpNodeId: string }> = [];
  for (const m of dump.filesystem_masters ?? []) {
    const nodes = (holders.get(m.filesystem_id) ?? []).sort();
    if (nodes.length === 0 || (await store.get(KEYS.master(m.filesystem_id)))) continue;
    const nodeId = nodes.includes(m.node_id) ? m.node_id : nodes.includes(masterNodes.nodeId) ? masterNodes.nodeId : nodes[0]!;
    const put = putMaster(m.filesystem_id, nodeId) as Extract<TxnOp, { type: 'put' }>;
    const result = await store.txn({ compare: [absent(put.key)], success: [put] });
    if (!result.succeeded) continue;
    masterNodes.applyPut(put.key, put.value, result.revision);
    written.push({ fsId: m.filesystem_id, nodeId, dumpNodeId: m.node_id });
  }
  return written;
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

/** Hashes are hex here; the original's backups hold them base64 ([]byte in Go JSON). undefined: neither. */
function toHex(value: string): string | undefined {
  if (/^([0-9a-f]{2})*$/.test(value)) return value;
  if (BASE64.test(value) && value.length % 4 === 0) return Buffer.from(value, 'base64').toString('hex');
  return undefined;
}
