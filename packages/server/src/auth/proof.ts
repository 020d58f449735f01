import { inspect } from 'node:util';

/**
 * What a request proved about its user, for the few handlers that need more than the user's
 * identity: `GetApiKey` returns the key the caller authenticated with, or opens the sealed
 * copy with the unlock key their password gave; `ResetApiKey` and `UpdatePassword` seal the
 * key under it. It lives only in this process, for one request: its fields are private, it
 * serialises as `{}` and prints as `[CallerProof]`, so a log line, a forwarded call or a
 * reply can never carry it.
 */
export class CallerProof {
  readonly #apiKey: string | undefined;
  readonly #unlockKey: Buffer | undefined;
  /** The password salt the unlock key was derived with: it opens only that record's seal. */
  readonly #salt: string | undefined;

  private constructor(apiKey: string | undefined, unlockKey: Buffer | undefined, salt: string | undefined) {
    this.#apiKey = apiKey;
    this.#unlockKey = unlockKey;
    this.#salt = salt;
  }

  static apiKey(apiKey: string): CallerProof {
    return new CallerProof(apiKey, undefined, undefined);
  }

  static password(unlockKey: Buffer, salt: string): CallerProof {
    return new CallerProof(undefined, unlockKey, salt);
  }

  /** The API key the caller sent, when they authenticated with one. */
  get apiKey(): string | undefined {
    return this.#apiKey;
  }

  /** The unlock key of the password the caller sent, if that password is still the user's (same salt). */
  unlockKeyFor(user: { readonly Salt: string }): Buffer | undefined {
    return this.#unlockKey !== undefined && this.#salt === user.Salt ? this.#unlockKey : undefined;
  }

  toJSON(): Record<string, never> {
    return {};
  }

  [inspect.custom](): string {
    return '[CallerProof]';
  }
}
