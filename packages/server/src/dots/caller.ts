import { ADMIN_USER_ID, DotmeshError } from '@dotmesh/core';
import type { CallerProof } from '../auth/proof.ts';
import type { DotInfo } from './labels.ts';

/** Who is calling: the authenticated user and how they proved it. */
export interface Caller {
  readonly id: string;
  readonly name: string;
  readonly authMethod: 'apikey' | 'password' | 'internal';
  /**
   * The proof itself (the API key sent, or the unlock key of the password sent), for the
   * user handlers that need it; set by the Authenticator, never serialised (auth/proof.ts).
   */
  readonly proof?: CallerProof;
}

export function isAdmin(caller: Caller): boolean {
  return caller.id === ADMIN_USER_ID;
}

export function requireAdmin(caller: Caller): void {
  if (!isAdmin(caller)) throw new DotmeshError('NOT_ADMIN', `Userid ${caller.id} is not admin user`);
}

/** Owner, collaborator or admin may read and write a dot (as the original). */
export function canAccess(caller: Caller, dot: Pick<DotInfo, 'ownerId' | 'collaboratorIds'>): boolean {
  return isAdmin(caller) || dot.ownerId === caller.id || dot.collaboratorIds.includes(caller.id);
}

/** Only the namespace's user (or admin) may create dots in it. */
export function requireNamespaceAdmin(caller: Caller, namespace: string): void {
  if (!isAdmin(caller) && caller.name !== namespace) {
    throw new DotmeshError(
      'PERMISSION_DENIED',
      `User is not an administrator for namespace ${namespace}, so cannot create volumes`,
      { hint: `create dots in your own namespace (${caller.name}/...)` },
    );
  }
}

/** Only the dot's owner (or admin) may delete it, roll it back and change its collaborators. */
export function isOwner(caller: Caller, dot: DotInfo): boolean {
  return isAdmin(caller) || dot.ownerId === caller.id;
}

/** Throws PERMISSION_DENIED unless the caller owns the dot (or is admin); `what` is the action. */
export function requireOwner(caller: Caller, dot: DotInfo, what: string): void {
  if (!isOwner(caller, dot)) {
    throw new DotmeshError('PERMISSION_DENIED', `Only the owner of ${dot.namespace}/${dot.name} or admin may ${what}`, {
      hint: `ask ${dot.namespace} (the owner)`,
    });
  }
}
