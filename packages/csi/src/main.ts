import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { DotmeshClient } from '@dotmesh/rpc';
import { parseCredentials } from './credentials.ts';
import { type RunningDriver, startDriver } from './driver.ts';
import { killingFailpoints } from './failpoints.ts';

export const USAGE = `Usage: dotmesh-csi --endpoint unix:///PATH/csi.sock --credentials-file FILE --csi-proto FILE [options]

The Kubernetes CSI driver csi.dotmesh.io (Identity, Controller and Node services on one socket).

  --endpoint URL            unix:///path/csi.sock (or a plain path) to serve CSI on
  --server-url URL          the dotmesh-server's API on this node (default http://127.0.0.1:32607/rpc)
  --credentials-file FILE   JSON {"user": ..., "apiKey": ...}: the driver's own dotmesh user, for
                            calls that carry no Kubernetes secrets (an admin: it unmounts any volume)
  --node-id ID              this node's dotmesh node id (default: asked from the server, PoolInfo)
  --csi-proto FILE          csi.proto of the CSI spec v1.13.0 (see docs/kubernetes.md)
  --registration-dir DIR    register with the kubelet: its plugins_registry directory
  --registration-proto FILE the kubelet's pluginregistration api.proto (with --registration-dir)
  --request-timeout-ms N    timeout of one call to the server (default 300000)
  --failpoint NAME          tests only: SIGKILL itself at that step (repeatable)
  -h, --help`;

export interface MainIo {
  readonly stderr: (line: string) => void;
  /** Resolves when the driver should stop (a signal). */
  readonly stopped: Promise<void>;
}

/** Parses the flags, starts the driver and runs it until `io.stopped`. Returns the exit status. */
export async function main(argv: readonly string[], io: MainIo, version: string): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        endpoint: { type: 'string' },
        'server-url': { type: 'string', default: 'http://127.0.0.1:32607/rpc' },
        'credentials-file': { type: 'string' },
        'node-id': { type: 'string' },
        'csi-proto': { type: 'string' },
        'registration-dir': { type: 'string' },
        'registration-proto': { type: 'string' },
        'request-timeout-ms': { type: 'string', default: '300000' },
        failpoint: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (e) {
    io.stderr(`dotmesh-csi: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stderr(USAGE);
    return 0;
  }
  const need = ['endpoint', 'credentials-file', 'csi-proto'].filter((k) => typeof values[k] !== 'string');
  if (need.length > 0) {
    io.stderr(`dotmesh-csi: missing --${need.join(', --')}\n${USAGE}`);
    return 2;
  }
  const endpoint = String(values.endpoint);
  const socketPath = endpoint.startsWith('unix://') ? endpoint.slice('unix://'.length) : endpoint;
  const timeout = Number(values['request-timeout-ms']);
  if (!socketPath.startsWith('/') || !Number.isInteger(timeout) || timeout < 0) {
    io.stderr('dotmesh-csi: --endpoint must be an absolute unix socket path, --request-timeout-ms a whole number');
    return 2;
  }
  const log = (entry: Record<string, unknown>) => io.stderr(JSON.stringify({ time: new Date().toISOString(), ...entry }));
  let driver: RunningDriver;
  try {
    const credentialsFile = String(values['credentials-file']);
    const credentials = parseCredentials(await readFile(credentialsFile, 'utf8'), credentialsFile);
    const serverUrl = String(values['server-url']);
    const nodeId =
      typeof values['node-id'] === 'string'
        ? values['node-id']
        : (await new DotmeshClient({ url: serverUrl, ...credentials, timeoutMs: 30_000 }).call('PoolInfo', null)).NodeId;
    driver = await startDriver({
      socketPath,
      serverUrl,
      credentials,
      nodeId,
      csiProto: String(values['csi-proto']),
      ...(typeof values['registration-dir'] === 'string' ? { registrationDir: values['registration-dir'] } : {}),
      ...(typeof values['registration-proto'] === 'string' ? { registrationProto: values['registration-proto'] } : {}),
      version,
      requestTimeoutMs: timeout,
      log,
      failpoint: killingFailpoints(new Set(Array.isArray(values.failpoint) ? values.failpoint : []), log),
    });
  } catch (e) {
    io.stderr(`dotmesh-csi: cannot start: ${(e as Error).message}`);
    return 1;
  }
  await io.stopped;
  await driver.close();
  log({ event: 'stopped' });
  return 0;
}
