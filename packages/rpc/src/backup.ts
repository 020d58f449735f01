import { DotmeshError } from '@dotmesh/core';
import { z } from 'zod';

/**
 * BackupV1: what `DumpEtcd` returns and `RestoreEtcd` takes (the original's snake_case
 * backup format). Users carry the verifiers of their credentials, so they survive a lost
 * store: the password's salt and hash, and the API key's verifier (`ApiKeySalt`,
 * `ApiKeyHmac`) and sealed copy (`ApiKeySealed`); `ApiKey` is "" in our dumps and holds the
 * key in clear only in the original's. The registry parts describe dots, branches and
 * masters as the store mirrored them (the pool stays authoritative for those).
 */
const text = z.string().max(64 * 1024);

export const backupUserSchema = z.looseObject({
  Id: text.min(1),
  Name: text.min(1),
  Email: text.default(''),
  Salt: text.default(''),
  Password: text.default(''),
  ApiKey: text.default(''),
  ApiKeySalt: text.default(''),
  ApiKeyHmac: text.default(''),
  ApiKeySealed: text.default(''),
  Metadata: z.record(z.string(), z.string()).nullable().default({}),
});

export const backupMasterSchema = z.looseObject({ filesystem_id: text, node_id: text });

export const backupRegistryFilesystemSchema = z.looseObject({
  Id: text,
  OwnerId: text.default(''),
  Name: z.looseObject({ Namespace: text, Name: text }),
  CollaboratorIds: z.array(text).nullable().default([]),
});

export const backupCloneSchema = z.looseObject({
  TopLevelFilesystemId: text,
  FilesystemId: text,
  Name: text,
  Origin: z.looseObject({ FilesystemId: text.default(''), SnapshotId: text.default('') }).optional(),
});

export const backupV1Schema = z.looseObject({
  version: z.literal('v1'),
  created: z.string().max(100).default(''),
  users: z.array(backupUserSchema).nullable().default([]),
  filesystem_masters: z.array(backupMasterSchema).nullable().default([]),
  registry_filesystems: z.array(backupRegistryFilesystemSchema).nullable().default([]),
  registry_clones: z.array(backupCloneSchema).nullable().default([]),
});

export type BackupUser = z.output<typeof backupUserSchema>;
export type BackupFilesystemMaster = z.output<typeof backupMasterSchema>;
export type BackupRegistryFilesystem = z.output<typeof backupRegistryFilesystemSchema>;
export type BackupClone = z.output<typeof backupCloneSchema>;
export type BackupV1 = z.output<typeof backupV1Schema>;

/** Largest dump accepted as JSON text (RestoreEtcd's Dump may be the text or the object). */
export const MAX_BACKUP_BYTES = 64 * 1024 * 1024;

/** The RestoreEtcd `Dump` param: a BackupV1 object or its JSON text ("" when missing). */
export const backupParamSchema = z.union([z.string().max(MAX_BACKUP_BYTES), z.looseObject({})]).default('');

/** Validates a dump (object or JSON text); INVALID_ARGUMENT naming the first problem. */
export function parseBackup(dump: unknown): BackupV1 {
  let value = dump;
  if (typeof dump === 'string') {
    if (dump.trim() === '') throw new DotmeshError('INVALID_ARGUMENT', 'RestoreEtcd needs a Dump (the output of DumpEtcd)');
    try {
      value = JSON.parse(dump);
    } catch (e) {
      throw new DotmeshError('INVALID_ARGUMENT', `the dump is not JSON: ${(e as Error).message}`);
    }
  }
  const parsed = backupV1Schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DotmeshError(
      'INVALID_ARGUMENT',
      `not a v1 backup: ${issue?.path.join('.') || 'dump'} ${issue?.message ?? ''}`.trim(),
      {
        hint: "give the JSON printed by 'dm cluster backup-etcd'",
      },
    );
  }
  return parsed.data;
}
