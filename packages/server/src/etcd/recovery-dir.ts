import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import { parseRecoveryDirective, type RecoveryRole } from './recovery-journal.ts';

/** What the mounted ConfigMap `dotmesh-etcd-recovery` says to this pool's server. */
export interface RecoveryDirective {
  /** Refuse a pool volume without a config: pods made while no server serves never start a new cluster. */
  readonly existingPoolOnly: boolean;
  /** This pool's part in the decided recovery (absent: none decided, or this pool runs no member). */
  readonly step?: { readonly id: string; readonly role: RecoveryRole };
}

const NODE_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Reads the operator's etcd recovery ConfigMap as mounted in `dir` (keys `existing-pool-only`,
 * `id`, `from`; each file absent when the key is). `from` names the Dotmesh node whose member
 * restarts the cluster: this pool's role is `force-new-cluster` when its member (the name in
 * its status file, `statusFile`) is that node, else `rejoin`. A pool whose state names no
 * member has no part. Values are checked: a bad one is refused (INVALID_ARGUMENT).
 */
export async function readRecoveryDir(dir: string, statusFile: string): Promise<RecoveryDirective> {
  const read = (key: string) =>
    readFile(join(dir, key), 'utf8').then(
      (t) => t.trim(),
      () => undefined,
    );
  const [onlyExisting, id, from] = await Promise.all([read('existing-pool-only'), read('id'), read('from')]);
  const existingPoolOnly = onlyExisting === 'true';
  if (id === undefined && from === undefined) return { existingPoolOnly };
  if (id === undefined || from === undefined || !NODE_ID.test(from)) {
    throw new DotmeshError('INVALID_ARGUMENT', `the etcd recovery in ${dir} needs an id and a node id (from)`, {
      hint: 'the operator writes the ConfigMap dotmesh-etcd-recovery; delete it so that it decides again',
    });
  }
  const member = await readFile(statusFile, 'utf8').then(
    (t) => (JSON.parse(t) as { name?: unknown }).name,
    () => undefined,
  );
  if (typeof member !== 'string' || member === '') return { existingPoolOnly };
  return { existingPoolOnly, step: parseRecoveryDirective(id, member === from ? 'force-new-cluster' : 'rejoin') };
}
