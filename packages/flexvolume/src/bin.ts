/**
 * The FlexVolume driver `dotmesh.io/dm` as the kubelet runs it (`dm init`, `dm mount <dir>
 * <json>`, `dm unmount <dir>`): one JSON reply on stdout. Built into a single executable with
 * Node inside (scripts/build.ts), so nodes need no Node.js. The server's socket is `dm.sock`
 * beside the executable (DOTMESH_FLEXVOLUME_SOCKET overrides it, for running the source).
 */
import { dirname, join } from 'node:path';
import { FLEX_SOCKET_FILE } from '@dotmesh/rpc/flexvolume';
import { runDriver } from './driver.ts';
import { bindMount, isMountPoint, unmountPath } from './mounts.ts';
import { postToSocket } from './socket-client.ts';

/** Procure may wait for a handoff from another node (up to 30 s there) and a first mount. */
const SERVER_TIMEOUT_MS = 120_000;

const sea = process.getBuiltinModule('node:sea') as { isSea(): boolean } | undefined;
const self = sea?.isSea() ? process.execPath : (process.argv[1] ?? '.');
const socketPath = process.env.DOTMESH_FLEXVOLUME_SOCKET || join(dirname(self), FLEX_SOCKET_FILE);
// No top-level await: the single executable runs this bundled as CommonJS. Nothing goes to
// stderr: the kubelet reads stdout and stderr together as the reply.
void runDriver(process.argv.slice(2), {
  post: (path, body) => postToSocket(socketPath, path, body, SERVER_TIMEOUT_MS),
  bind: bindMount,
  unmount: unmountPath,
  isMountPoint,
}).then((reply) => {
  process.stdout.write(`${JSON.stringify(reply)}\n`);
  process.exitCode = reply.status === 'Failure' ? 1 : 0;
});
