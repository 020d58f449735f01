import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Clients } from './credentials.ts';
import { type Log, unary } from './unary.ts';

export const DRIVER_NAME = 'csi.dotmesh.io';

/**
 * The Identity service: the driver's name and version, its controller and group controller
 * services, and Probe:
 * ready when the dotmesh server answers the driver's own user.
 */
export function identityService(clients: Clients, version: string, log: Log): UntypedServiceImplementation {
  return {
    GetPluginInfo: unary('GetPluginInfo', async () => ({ name: DRIVER_NAME, vendor_version: version, manifest: {} }), log),
    GetPluginCapabilities: unary(
      'GetPluginCapabilities',
      async () => ({
        capabilities: [{ service: { type: 'CONTROLLER_SERVICE' } }, { service: { type: 'GROUP_CONTROLLER_SERVICE' } }],
      }),
      log,
    ),
    Probe: unary(
      'Probe',
      async () => {
        const ready = await clients.own.call('CurrentUser', null, { timeoutMs: 5000 }).then(
          () => true,
          () => false,
        );
        return { ready: { value: ready } };
      },
      log,
    ),
  };
}
