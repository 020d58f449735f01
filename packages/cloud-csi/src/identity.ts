import { type Log, unary } from '@dotmesh/csi';
import type { UntypedServiceImplementation } from '@grpc/grpc-js';

export const DRIVER_NAME = 'cloud.test.dotmesh.io';

/** The Identity service: a controller, zones (accessibility constraints), online expansion. */
export function identityService(version: string, log: Log): UntypedServiceImplementation {
  return {
    GetPluginInfo: unary('GetPluginInfo', async () => ({ name: DRIVER_NAME, vendor_version: version, manifest: {} }), log),
    GetPluginCapabilities: unary(
      'GetPluginCapabilities',
      async () => ({
        capabilities: [
          { service: { type: 'CONTROLLER_SERVICE' } },
          { service: { type: 'VOLUME_ACCESSIBILITY_CONSTRAINTS' } },
          { volume_expansion: { type: 'ONLINE' } },
        ],
      }),
      log,
    ),
    Probe: unary('Probe', async () => ({ ready: { value: true } }), log),
  };
}
