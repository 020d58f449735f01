import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { DRIVER_NAME } from './identity.ts';
import { type Log, unary } from './unary.ts';

/**
 * The kubelet's plugin-registration service, served on a socket in the kubelet's
 * `plugins_registry` directory (what node-driver-registrar would do): the kubelet finds the
 * socket, asks GetInfo, then talks CSI to `csiSocketPath` and reports the outcome. `driverName`
 * is csi.dotmesh.io unless another driver (a test one) registers through it.
 */
export function registrationService(
  csiSocketPath: string,
  log: Log,
  driverName: string = DRIVER_NAME,
): UntypedServiceImplementation {
  return {
    GetInfo: unary(
      'GetInfo',
      async () => ({ type: 'CSIPlugin', name: driverName, endpoint: csiSocketPath, supported_versions: ['1.0.0'] }),
      log,
    ),
    NotifyRegistrationStatus: unary(
      'NotifyRegistrationStatus',
      async (req: { plugin_registered: boolean; error: string }) => {
        log({ event: 'kubelet registration', registered: req.plugin_registered, error: req.error || undefined });
        return {};
      },
      log,
    ),
  };
}
