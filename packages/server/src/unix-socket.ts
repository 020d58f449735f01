import { chmod, mkdir, unlink } from 'node:fs/promises';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { DotmeshError } from '@dotmesh/core';

/**
 * Serves `server` on the unix socket `socketPath` with file mode `mode`. A socket left by a
 * killed server is replaced; one another live process answers on is left alone (CONFLICT, with
 * `hint`). `what` names the socket in the error.
 */
export async function listenUnixSocket(
  server: Server,
  o: { socketPath: string; mode: number; what: string; hint: string },
): Promise<void> {
  await mkdir(dirname(o.socketPath), { recursive: true, mode: 0o755 });
  if (await answers(o.socketPath)) {
    throw new DotmeshError('CONFLICT', `another process serves the ${o.what} socket ${o.socketPath}`, { hint: o.hint });
  }
  await unlink(o.socketPath).catch(() => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(o.socketPath, o.mode);
}

/** Stops serving and removes the socket file. */
export async function closeUnixSocket(server: Server, socketPath: string): Promise<void> {
  server.closeIdleConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await unlink(socketPath).catch(() => undefined);
}

/** Whether something accepts connections on the unix socket (a live server rather than a stale file). */
function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
