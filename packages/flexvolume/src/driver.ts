import { errorObject, isDotmeshError } from '@dotmesh/core';
import {
  checkTarget,
  FLEX_MOUNT_PATH,
  FLEX_UNMOUNT_PATH,
  type FlexMountReply,
  type FlexUnmountRequest,
} from '@dotmesh/rpc/flexvolume';
import { parseMountArgs } from './options.ts';

/** What the kubelet reads from a FlexVolume driver's stdout. */
export interface DriverReply {
  readonly status: 'Success' | 'Failure' | 'Not supported';
  readonly message?: string;
  readonly capabilities?: { readonly attach: boolean };
}

/** What the driver does to the world: the server's socket and the host's mount table. */
export interface DriverIo {
  /** POSTs JSON to the server's FlexVolume socket; resolves with the reply, rejects when the server gives a refusal. */
  post(path: string, body: unknown): Promise<unknown>;
  /** Bind-mounts `source` at `target` (read-only when asked). */
  bind(source: string, target: string, readOnly: boolean): Promise<void>;
  /** Unmounts `target`. */
  unmount(target: string): Promise<void>;
  isMountPoint(target: string): Promise<boolean>;
}

/**
 * One kubelet call (`argv` without the executable): `init`, `mount <dir> <json>`,
 * `unmount <dir>`; anything else is "Not supported" (the kubelet then does its default). Never
 * throws: failures are a Failure reply naming what went wrong.
 */
export async function runDriver(argv: readonly string[], io: DriverIo): Promise<DriverReply> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'init':
        return { status: 'Success', capabilities: { attach: false } };
      case 'mount':
        return await mount(args[0], args[1], io);
      case 'unmount':
        return await unmount(args[0], io);
      default:
        return {
          status: 'Not supported',
          message: `dotmesh.io/dm does not implement ${JSON.stringify(String(command).slice(0, 64))}`,
        };
    }
  } catch (e) {
    const error = errorObject(e);
    return { status: 'Failure', message: error.hint ? `${error.message} (${error.hint})` : error.message };
  }
}

/**
 * Procure through the server (the dot made on first use, its branch moved to this node) with a
 * mount use recorded for `dir`, then the branch's data bound at `dir`. A failed bind ends the use.
 */
async function mount(dir: string | undefined, options: string | undefined, io: DriverIo): Promise<DriverReply> {
  const request = parseMountArgs(dir, options);
  const reply = (await io.post(FLEX_MOUNT_PATH, request)) as FlexMountReply;
  if (!(await io.isMountPoint(request.Target))) {
    try {
      await io.bind(reply.Path, request.Target, request.ReadOnly);
    } catch (e) {
      await io.post(FLEX_UNMOUNT_PATH, { Target: request.Target } satisfies FlexUnmountRequest).catch(() => undefined);
      throw e;
    }
  }
  return { status: 'Success', message: `${request.Namespace}/${request.Name} (${request.Subdot}) at ${request.Target}` };
}

/**
 * Unbinds `dir` (if bound) and ends its use, so the branch may move to another node. With no
 * server to reach (stopped, uninstalled) the unbind alone succeeds, so the pod can go: the
 * server ends such uses when it starts again (the kubelet has removed their directories). Any other refusal fails the call (the kubelet
 * retries it).
 */
async function unmount(dir: string | undefined, io: DriverIo): Promise<DriverReply> {
  const target = checkTarget(dir);
  if (await io.isMountPoint(target)) await io.unmount(target);
  try {
    await io.post(FLEX_UNMOUNT_PATH, { Target: target } satisfies FlexUnmountRequest);
  } catch (e) {
    if (!(isDotmeshError(e) && e.data?.unreachable === true)) throw e;
    return { status: 'Success', message: `unmounted; ${e.message}: the server ends the use when it starts` };
  }
  return { status: 'Success' };
}
