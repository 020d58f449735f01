import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { isDotmeshError } from '@dotmesh/core';
import { DotmeshClient } from '@dotmesh/rpc';
import { type Credentials, parseCredentials } from './credentials.ts';
import { type RunningDriver, startDriver } from './driver.ts';
import { killingFailpoints } from './failpoints.ts';

export const USAGE = `Usage: dotmesh-csi --endpoint unix:///PATH/csi.sock (--credentials-file FILE | --api-key-file FILE) --csi-proto FILE [options]

The Kubernetes CSI driver csi.dotmesh.io (Identity, Controller and Node services on one socket).

  --endpoint URL            unix:///path/csi.sock (or a plain path) to serve CSI on
  --server-url URL          the dotmesh-server's API on this node (default http://127.0.0.1:32607/rpc)
  --credentials-file FILE   JSON {"user": ..., "apiKey": ...}: the driver's own dotmesh user, for
                            calls that carry no Kubernetes secrets (an admin: it unmounts any volume)
  --api-key-file FILE       instead of --credentials-file: a file holding only the API key (the
                            Secret dotmesh's dotmesh-api-key.txt) of --user (default admin)
  --user NAME               the user of --api-key-file
  --node-id ID              this node's dotmesh node id (default: asked from the server, PoolInfo,
                            waiting until the server answers)
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
        'api-key-file': { type: 'string' },
        user: { type: 'string', default: 'admin' },
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
  const need = ['endpoint', 'csi-proto'].filter((k) => typeof values[k] !== 'string');
  if (need.length > 0) {
    io.stderr(`dotmesh-csi: missing --${need.join(', --')}\n${USAGE}`);
    return 2;
  }
  if ((typeof values['credentials-file'] === 'string') === (typeof values['api-key-file'] === 'string')) {
    io.stderr(`dotmesh-csi: give one of --credentials-file and --api-key-file\n${USAGE}`);
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
    const credentials = await readCredentials(values);
    const serverUrl = String(values['server-url']);
    const nodeId =
      typeof values['node-id'] === 'string' ? values['node-id'] : await serverNodeId(serverUrl, credentials, io.stopped, log);
    if (nodeId === undefined) return 0; // stopped while waiting for the server
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

/** The driver's own credentials, from --credentials-file (JSON) or --api-key-file and --user. */
async function readCredentials(values: Record<string, string | boolean | string[] | undefined>): Promise<Credentials> {
  if (typeof values['credentials-file'] === 'string') {
    const file = values['credentials-file'];
    return parseCredentials(await readFile(file, 'utf8'), file);
  }
  const file = String(values['api-key-file']);
  const apiKey = (await readFile(file, 'utf8')).trim();
  if (apiKey === '') throw new Error(`${file} is empty: it must hold the API key of --user`);
  return { user: String(values.user), apiKey };
}

/**
 * This node's dotmesh node id (PoolInfo), asked until the server answers: a node plugin starts
 * beside its server and may be up first. Undefined when `stopped` resolves first.
 */
async function serverNodeId(
  url: string,
  credentials: Credentials,
  stopped: Promise<void>,
  log: (entry: Record<string, unknown>) => void,
): Promise<string | undefined> {
  let stop = false;
  void stopped.then(() => {
    stop = true;
  });
  const client = new DotmeshClient({ url, ...credentials, timeoutMs: 30_000 });
  for (let attempt = 1; !stop; attempt++) {
    try {
      return (await client.call('PoolInfo', null)).NodeId;
    } catch (e) {
      if (isDotmeshError(e) && e.code === 'UNAUTHENTICATED') throw e;
      if (attempt === 1 || attempt % 30 === 0) log({ event: 'waiting for the server', url, error: (e as Error).message });
      await Promise.race([sleep(2000), stopped]);
    }
  }
  return undefined;
}
