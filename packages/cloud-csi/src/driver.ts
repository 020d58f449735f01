import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Log, loadCsiServices, loadRegistrationService, registrationService } from '@dotmesh/csi';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { controllerService } from './controller.ts';
import { Disks } from './disks.ts';
import { DRIVER_NAME, identityService } from './identity.ts';
import { nodeService } from './node.ts';

export interface CloudDriverOptions {
  /** The unix socket the CSI services listen on. */
  readonly socketPath: string;
  /** The folder every node shares: the cloud's disks and their records. */
  readonly root: string;
  /** The zones of the cloud; new disks go to one of them. */
  readonly zones: readonly string[];
  /** With `zone`: also serve the Node service as this node (a node plugin). */
  readonly node?: string;
  readonly zone?: string;
  readonly csiProto: string;
  /** With `registrationDir`: registers the node plugin with the kubelet (its `plugins_registry`). */
  readonly registrationProto?: string;
  readonly registrationDir?: string;
  readonly log: Log;
}

export interface RunningCloudDriver {
  readonly socketPath: string;
  close(): Promise<void>;
}

/** Starts Identity and Controller (and Node, for a node plugin) on one socket, and the kubelet registration. */
export async function startCloudDriver(o: CloudDriverOptions): Promise<RunningCloudDriver> {
  const services = loadCsiServices(o.csiProto);
  const disks = new Disks(o.root);
  const server = new Server();
  server.addService(services.Identity, identityService('0.1.0', o.log));
  server.addService(services.Controller, controllerService(disks, o.zones, o.log));
  if (o.node !== undefined) {
    if (o.zone === undefined || !o.zones.includes(o.zone))
      throw new Error(`the node's zone must be one of ${o.zones.join(', ')}`);
    server.addService(services.Node, nodeService(disks, o.node, o.zone, o.log));
  }
  await listen(server, o.socketPath);
  const servers = [server];
  const sockets = [o.socketPath];
  if (o.registrationDir) {
    if (!o.registrationProto) throw new Error('registering with the kubelet needs the plugin-registration api.proto');
    const reg = new Server();
    reg.addService(loadRegistrationService(o.registrationProto), registrationService(o.socketPath, o.log, DRIVER_NAME));
    const socket = join(o.registrationDir, `${DRIVER_NAME}-reg.sock`);
    await listen(reg, socket);
    servers.push(reg);
    sockets.push(socket);
  }
  o.log({ event: 'listening', socket: o.socketPath, node: o.node, zone: o.zone });
  return {
    socketPath: o.socketPath,
    async close() {
      for (const s of servers) await new Promise<void>((resolve) => s.tryShutdown(() => resolve()));
      for (const p of sockets) await rm(p, { force: true });
    },
  };
}

async function listen(server: Server, path: string): Promise<void> {
  await rm(path, { force: true });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${path}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
}
