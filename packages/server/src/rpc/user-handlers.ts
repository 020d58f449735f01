import { ADMIN_USER_NAME, DotmeshError } from '@dotmesh/core';
import type { Authenticator } from '../auth/authenticator.ts';
import { safeUser, type UserRecord, type UserService } from '../auth/users.ts';
import { type Caller, isAdmin } from '../dots/caller.ts';
import { setCollaborator } from '../dots/collaborators.ts';
import type { DotContext } from '../dots/context.ts';
import type { HandlerTable } from './handlers.ts';

export interface UserHandlerDeps {
  readonly ctx: DotContext;
  readonly users: UserService;
  readonly auth: Authenticator;
}

/**
 * The user methods: GetApiKey (the caller's key: the one they sent, or opened with the
 * password they sent), ResetApiKey and UpdatePassword (password auth, enforced by the method
 * table), RegisterNewUser (admin, enforced by the method table), AddCollaborator and
 * RemoveCollaborator (owner or admin of the dot). The credential methods need the caller's
 * proof (auth/proof.ts), which exists only on the node that authenticated the call: they
 * run there.
 */
export function userHandlers(
  deps: UserHandlerDeps,
): Pick<
  HandlerTable,
  'GetApiKey' | 'ResetApiKey' | 'RegisterNewUser' | 'UpdatePassword' | 'AddCollaborator' | 'RemoveCollaborator'
> {
  const { ctx, users } = deps;
  const collaborator = async (name: string) => {
    const u = name.length > 0 && name.length <= 256 && !name.includes('\0') ? await users.byName(name) : undefined;
    if (!u) {
      throw new DotmeshError('INVALID_ARGUMENT', `Unable to locate collaborator: no user named '${name.slice(0, 80)}'`, {
        hint: 'collaborators are named by user name; the admin creates users with RegisterNewUser',
      });
    }
    return { id: u.Id, name: u.Name };
  };
  return {
    GetApiKey: async (caller) => ({ ApiKey: users.apiKeyOf(await requireUser(users, caller), caller.proof) }),
    ResetApiKey: async (caller) => {
      const apiKey = await users.resetApiKey((await requireUser(users, caller)).Id, caller.proof);
      deps.auth.forget(caller.id);
      return { ApiKey: apiKey };
    },
    RegisterNewUser: async (_caller, p) => safeUser(await users.register({ name: p.Name, email: p.Email, password: p.Password })),
    UpdatePassword: async (caller, p) => {
      const updated = await users.updatePassword((await requireUser(users, caller)).Id, caller.proof, p.NewPassword);
      deps.auth.forget(updated.Id);
      return safeUser(updated);
    },
    AddCollaborator: async (caller, p) => {
      await setCollaborator(ctx, caller, p.MasterBranchID, () => collaborator(p.Collaborator), true);
      return true;
    },
    RemoveCollaborator: async (caller, p) => {
      await setCollaborator(ctx, caller, p.MasterBranchID, () => collaborator(p.Collaborator), false);
      return true;
    },
  };
}

/** The caller's user record; UNAUTHENTICATED when the user is gone. */
export async function requireUser(users: UserService, caller: Caller): Promise<UserRecord> {
  const u = await users.byId(caller.id);
  if (!u) throw new DotmeshError('UNAUTHENTICATED', `No such user ${caller.name}`);
  return u;
}

/**
 * Who owns a new dot in `namespace`: the caller, except when admin creates one in another
 * user's namespace, where that user owns it (admin when no such user exists).
 */
export async function ownerForNewDot(users: UserService, caller: Caller, namespace: string): Promise<string> {
  if (!isAdmin(caller) || namespace === ADMIN_USER_NAME) return caller.id;
  return (await users.byName(namespace))?.Id ?? caller.id;
}
