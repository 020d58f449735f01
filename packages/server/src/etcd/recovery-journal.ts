import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';

/**
 * A recovery of a managed etcd that lost every member at once (each pool moved to a new address
 * together, so no member can reach another and no majority forms). One recovery, named by its
 * id, is decided in one place (the Kubernetes operator): one pool's member restarts from its own
 * data as a new cluster of one (`force-new-cluster`), and every other pool's member sets its data
 * aside and joins that cluster again as a new member (`rejoin`).
 *
 * The journal (`<state dir>/etcd-recovery.json`) holds this pool's part: its role and whether it
 * is done. A step is done exactly once per id: a server killed before `done` was written does it
 * again (forcing a new cluster again is safe until others joined it, and they join only once it
 * serves, after `done`; a data dir already set aside is not set aside twice), and a recovery id
 * the journal holds as done is never done again, however often the directive comes.
 */
export type RecoveryRole = 'force-new-cluster' | 'rejoin';

export interface RecoveryStep {
  readonly id: string;
  readonly role: RecoveryRole;
  readonly done: boolean;
}

const ROLES: readonly RecoveryRole[] = ['force-new-cluster', 'rejoin'];
const ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function recoveryJournalFile(stateDir: string): string {
  return join(stateDir, 'etcd-recovery.json');
}

/** Checks a recovery id and role given by a user or the operator; returns the role. */
export function parseRecoveryDirective(id: string, role: string): { id: string; role: RecoveryRole } {
  if (!ID.test(id)) {
    throw new DotmeshError('INVALID_ARGUMENT', `etcd recovery id ${JSON.stringify(id)} is not 1–63 of [a-z0-9-]`, {
      hint: 'the operator names a recovery; delete the pod so that it is made again',
    });
  }
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new DotmeshError('INVALID_ARGUMENT', `etcd recovery role ${JSON.stringify(role)} is not one of ${ROLES.join(', ')}`);
  }
  return { id, role: role as RecoveryRole };
}

/** The journal's step (undefined: none, or a damaged file, which counts as none requested). */
export async function readRecoveryStep(stateDir: string): Promise<RecoveryStep | undefined> {
  const text = await readFile(recoveryJournalFile(stateDir), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const j = JSON.parse(text) as { id?: unknown; role?: unknown; done?: unknown };
    if (typeof j.id !== 'string' || typeof j.role !== 'string' || typeof j.done !== 'boolean') return undefined;
    const { id, role } = parseRecoveryDirective(j.id, j.role);
    return { id, role, done: j.done };
  } catch {
    return undefined;
  }
}

async function write(stateDir: string, step: RecoveryStep): Promise<void> {
  const file = recoveryJournalFile(stateDir);
  await writeFile(`${file}.new`, `${JSON.stringify(step)}\n`, { mode: 0o600 });
  await rename(`${file}.new`, file);
}

/**
 * Records the directive `id`/`role` for this pool unless the journal holds that recovery
 * already (done or not: nothing changes). The same id with another role is refused
 * (CONFLICT): a recovery's decision never changes.
 */
export async function requestRecoveryStep(stateDir: string, id: string, role: RecoveryRole): Promise<RecoveryStep> {
  const current = await readRecoveryStep(stateDir);
  if (current?.id === id) {
    if (current.role !== role) {
      throw new DotmeshError(
        'CONFLICT',
        `etcd recovery ${id} gave this pool the role ${current.role}; it is now asked for ${role}`,
        { hint: 'a recovery is decided once: delete the pod so that the operator makes it again with its decision' },
      );
    }
    return current;
  }
  const step = { id, role, done: false };
  await write(stateDir, step);
  return step;
}

/** Marks this pool's step of the recovery done (never done again). */
export async function markRecoveryStepDone(stateDir: string, step: RecoveryStep): Promise<void> {
  await write(stateDir, { ...step, done: true });
}
