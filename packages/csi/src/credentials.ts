import { DotmeshClient } from '@dotmesh/rpc';
import { invalid } from './grpc-errors.ts';

/** A dotmesh user's credentials: the keys of the Kubernetes Secret the StorageClass names. */
export const SECRET_USER_KEY = 'user';
export const SECRET_API_KEY = 'apiKey';
/**
 * The key of the admin's API key in the Secret `dotmesh` that users create for the operator (the
 * original's name): a StorageClass may name that Secret, and the driver then acts as `admin`.
 */
export const ADMIN_SECRET_API_KEY = 'dotmesh-api-key.txt';

export interface Credentials {
  readonly user: string;
  readonly apiKey: string;
}

/**
 * Makes the clients the driver calls the server with. Calls that carry secrets (the standard
 * `csi.storage.k8s.io/*-secret-*` parameters: CreateVolume, DeleteVolume, ControllerPublish,
 * NodeStage, NodePublish, CreateSnapshot, ...) act as the dotmesh user of those secrets (keys
 * `user` and `apiKey`, or the admin's `dotmesh-api-key.txt` of the Secret `dotmesh`), and are
 * refused without them. Calls the spec gives no secrets (ListVolumes, GetCapacity,
 * ControllerGetVolume, NodeUnstage, NodeUnpublish, NodeGetVolumeStats, ...) act as the driver's
 * own user (`--credentials-file`). Credentials are never logged nor put in an error.
 */
export class Clients {
  readonly #url: string;
  readonly #own: DotmeshClient;
  readonly #timeoutMs: number;

  constructor(o: { readonly url: string; readonly own: Credentials; readonly timeoutMs: number }) {
    this.#url = o.url;
    this.#timeoutMs = o.timeoutMs;
    this.#own = new DotmeshClient({ url: o.url, user: o.own.user, apiKey: o.own.apiKey, timeoutMs: o.timeoutMs });
  }

  /** The driver's own client (calls without secrets). */
  get own(): DotmeshClient {
    return this.#own;
  }

  /** For calls whose secrets are optional: the user of `secrets` when given, else the driver's own. */
  forSecretsOrOwn(secrets: Readonly<Record<string, string>> | undefined, call: string): DotmeshClient {
    return secrets && Object.keys(secrets).length > 0 ? this.forSecrets(secrets, call) : this.#own;
  }

  /** A client acting as the user of `secrets`; INVALID_ARGUMENT without them. */
  forSecrets(secrets: Readonly<Record<string, string>> | undefined, call: string): DotmeshClient {
    const adminKey = secrets?.[ADMIN_SECRET_API_KEY]?.trim();
    const named = secrets?.[SECRET_USER_KEY] !== undefined || secrets?.[SECRET_API_KEY] !== undefined;
    const user = named || !adminKey ? secrets?.[SECRET_USER_KEY] : 'admin';
    const apiKey = named || !adminKey ? secrets?.[SECRET_API_KEY] : adminKey;
    if (!user || !apiKey) {
      throw invalid(
        `${call}: no dotmesh credentials: the StorageClass must name a Secret with keys "${SECRET_USER_KEY}" and "${SECRET_API_KEY}", or the Secret dotmesh (key "${ADMIN_SECRET_API_KEY}") (csi.storage.k8s.io/*-secret-name and -namespace parameters)`,
      );
    }
    return new DotmeshClient({ url: this.#url, user, apiKey, timeoutMs: this.#timeoutMs });
  }
}

/** Reads `{"user": "...", "apiKey": "..."}`; the error never repeats the file's content. */
export function parseCredentials(text: string, source: string): Credentials {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${source}: not JSON (expected {"user": "...", "apiKey": "..."})`);
  }
  const o = parsed as Record<string, unknown> | null;
  if (!o || typeof o.user !== 'string' || typeof o.apiKey !== 'string' || o.user === '' || o.apiKey === '') {
    throw new Error(`${source}: expected {"user": "...", "apiKey": "..."} with both set`);
  }
  return { user: o.user, apiKey: o.apiKey };
}
