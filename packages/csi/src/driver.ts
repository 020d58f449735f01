import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { controllerService } from './controller.ts';
import { Clients, type Credentials } from './credentials.ts';
import type { Failpoint } from './failpoints.ts';
import { groupControllerService } from './group-controller.ts';
import { DRIVER_NAME, identityService } from './identity.ts';
import { nodeService } from './node.ts';
import { loadCsiServices, loadRegistrationService } from './proto.ts';
import { registrationService } from './registration.ts';
import type { Log } from './unary.ts';

export interface DriverOptions {
  /** The unix socket the CSI services listen on (a path). */
  readonly socketPath: string;
  readonly serverUrl: string;
  /** The driver's own dotmesh user, for calls that carry no secrets. */
  readonly credentials: Credentials;
  /** This node's dotmesh node id (NodeGetInfo, where ControllerPublish moves volumes to). */
  readonly nodeId: string;
  readonly csiProto: string;
  /** With `registrationDir`: registers with the kubelet (its `plugins_registry` directory). */
  readonly registrationProto?: string;
  readonly registrationDir?: string;
  readonly version: string;
  readonly requestTimeoutMs: number;
  readonly log: Log;
  /** Test-only stops (failpoints.ts); none by default. */
  readonly failpoint?: Failpoint;
}

export interface RunningDriver {
  readonly socketPath: string;
  readonly registrationSocket?: string;
  close(): Promise<void>;
}

/** Starts the Identity, Controller, GroupController and Node services on one socket (and the kubelet registration). */
export async function startDriver(o: DriverOptions): Promise<RunningDriver> {
  const services = loadCsiServices(o.csiProto);
  const clients = new Clients({ url: o.serverUrl, own: o.credentials, timeoutMs: o.requestTimeoutMs });
  const server = new Server();
  server.addService(services.Identity, identityService(clients, o.version, o.log));
  server.addService(services.Controller, controllerService(clients, o.log, o.failpoint));
  server.addService(services.GroupController, groupControllerService(clients, o.log));
  server.addService(services.Node, nodeService(clients, o.nodeId, o.log, o.failpoint));
  await listen(server, o.socketPath);
  let registration: { server: Server; socket: string } | undefined;
  if (o.registrationDir) {
    if (!o.registrationProto) throw new Error('registering with the kubelet needs the plugin-registration api.proto');
    const reg = new Server();
    reg.addService(loadRegistrationService(o.registrationProto), registrationService(o.socketPath, o.log));
    const socket = join(o.registrationDir, `${DRIVER_NAME}-reg.sock`);
    await listen(reg, socket);
    registration = { server: reg, socket };
  }
  o.log({ event: 'listening', socket: o.socketPath, registration: registration?.socket, node: o.nodeId });
  return {
    socketPath: o.socketPath,
    ...(registration ? { registrationSocket: registration.socket } : {}),
    async close() {
      for (const s of [registration?.server, server]) {
        if (s) await new Promise<void>((resolve) => s.tryShutdown(() => resolve()));
      }
      for (const p of [registration?.socket, o.socketPath]) if (p) await rm(p, { force: true });
    },
  };
}

/** Binds a unix socket (its directory made if missing), replacing a stale socket file a killed driver left. */
async function listen(server: Server, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o750 });
  await rm(path, { force: true });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${path}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
}
