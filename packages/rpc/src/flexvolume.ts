import { DEFAULT_SUBDOT, DotmeshError, type ErrorObject, MASTER_BRANCH, normalizeBranch, validateName } from '@dotmesh/core';

/**
 * The FlexVolume socket protocol between dotmesh-server and its FlexVolume driver `dotmesh.io/dm`
 * (HTTP on the unix socket `dm.sock` beside the driver, which the server serves mode 0600 and
 * answers as admin — the socket's file mode is the only guard):
 *
 *   POST /flexvolume/v1/mount   FlexMountRequest   → 200 FlexMountReply   (Procure + a mount use)
 *   POST /flexvolume/v1/unmount FlexUnmountRequest → 200 FlexUnmountReply (the use ends)
 *
 * A refusal is a non-200 status with `{"Error": {code, message, hint, data}}` (core's ErrorObject).
 */
export const FLEX_MOUNT_PATH = '/flexvolume/v1/mount';
export const FLEX_UNMOUNT_PATH = '/flexvolume/v1/unmount';
/** The driver `dotmesh.io/dm` is installed as `<plugin dir>/dotmesh.io~dm/dm`. */
export const FLEX_DRIVER_DIR = 'dotmesh.io~dm';
export const FLEX_DRIVER_FILE = 'dm';
export const FLEX_SOCKET_FILE = 'dm.sock';
/** Longest mount directory accepted (Linux PATH_MAX). */
const MAX_TARGET_BYTES = 4096;

export interface FlexMountRequest {
  readonly Namespace: string;
  /** `dot` or `dot@branch` (a pinned branch; the dot must exist then). */
  readonly Name: string;
  /** `__default__` for none, `__root__` for the dot's root. */
  readonly Subdot: string;
  /** The directory the kubelet mounts the volume at. */
  readonly Target: string;
  readonly ReadOnly: boolean;
}

export interface FlexMountReply {
  /** The host directory to bind at the target (the branch's data, or its subdot). */
  readonly Path: string;
  readonly FilesystemId: string;
}

export interface FlexUnmountRequest {
  readonly Target: string;
}

export interface FlexUnmountReply {
  /** How many uses ended (0 when none was recorded for the target: unmount is idempotent). */
  readonly Released: number;
}

/** A refusal: the error as `errorObject` (core) describes it. */
export interface FlexErrorReply {
  readonly Error: ErrorObject;
}

/**
 * A mount request checked: names as dots name them (1 to 64 letters, digits, `_`, `-`), an
 * optional `@branch`, the subdot ("" → `__default__`), an absolute target without `.`/`..`.
 */
export function checkMountRequest(raw: unknown): FlexMountRequest {
  const o = asObject(raw);
  const namespace = validateName('namespace', o.Namespace);
  const name = checkDotName(o.Name);
  const subdot = o.Subdot === '' || o.Subdot === undefined ? DEFAULT_SUBDOT : validateName('subdot', o.Subdot);
  if (o.ReadOnly !== undefined && typeof o.ReadOnly !== 'boolean') {
    throw new DotmeshError('INVALID_ARGUMENT', 'ReadOnly must be true or false');
  }
  return { Namespace: namespace, Name: name, Subdot: subdot, Target: checkTarget(o.Target), ReadOnly: o.ReadOnly === true };
}

export function checkUnmountRequest(raw: unknown): FlexUnmountRequest {
  return { Target: checkTarget(asObject(raw).Target) };
}

/** `dot` or `dot@branch`, each part a valid name; `@master` is the dot itself. */
export function checkDotName(value: unknown): string {
  if (typeof value !== 'string') throw new DotmeshError('INVALID_NAME', `name must be a string, got ${typeof value}`);
  const at = value.indexOf('@');
  if (at < 0) return validateName('dot', value);
  const dot = validateName('dot', value.slice(0, at));
  const branch = normalizeBranch(value.slice(at + 1));
  return branch === MASTER_BRANCH ? dot : `${dot}@${branch}`;
}

/** An absolute directory path without `.`, `..`, empty segments or control characters. */
export function checkTarget(value: unknown): string {
  if (typeof value !== 'string' || value === '' || Buffer.byteLength(value) > MAX_TARGET_BYTES) {
    throw new DotmeshError('INVALID_ARGUMENT', `the mount directory must be a path of 1 to ${MAX_TARGET_BYTES} bytes`);
  }
  const controls = /[\u0000-\u001f\u007f]/;
  const parts = value.split('/').slice(1);
  if (!value.startsWith('/') || controls.test(value) || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new DotmeshError(
      'INVALID_ARGUMENT',
      `the mount directory ${JSON.stringify(value.slice(0, 200))} is not a clean absolute path`,
      {
        hint: 'give an absolute path without ".", ".." or empty segments',
      },
    );
  }
  return value;
}

function asObject(raw: unknown): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new DotmeshError('INVALID_ARGUMENT', 'the request must be a JSON object');
  }
  return raw as Record<string, unknown>;
}
