import { credentials, type GrpcObject, loadPackageDefinition, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

type Call = (req: Record<string, unknown>) => Promise<Record<string, unknown>>;

type IdentityMethod = 'GetPluginInfo' | 'GetPluginCapabilities' | 'Probe';
type ControllerMethod =
  | 'CreateVolume'
  | 'DeleteVolume'
  | 'ControllerPublishVolume'
  | 'ControllerUnpublishVolume'
  | 'ValidateVolumeCapabilities'
  | 'ListVolumes'
  | 'GetCapacity'
  | 'ControllerGetCapabilities'
  | 'CreateSnapshot'
  | 'DeleteSnapshot'
  | 'ListSnapshots'
  | 'ControllerGetVolume'
  | 'ControllerGetVolumeHealth'
  | 'ControllerExpandVolume';
type GroupControllerMethod =
  | 'GroupControllerGetCapabilities'
  | 'CreateVolumeGroupSnapshot'
  | 'GetVolumeGroupSnapshot'
  | 'DeleteVolumeGroupSnapshot';
type NodeMethod =
  | 'NodeStageVolume'
  | 'NodeUnstageVolume'
  | 'NodePublishVolume'
  | 'NodeUnpublishVolume'
  | 'NodeGetVolumeStats'
  | 'NodeGetVolumeHealth'
  | 'NodeGetCapabilities'
  | 'NodeGetInfo'
  | 'NodeExpandVolume';

/**
 * A CSI client (tests, benchmarks, tools): `c.Controller.CreateVolume({...})` resolves the reply or
 * rejects with the gRPC ServiceError. Messages are as proto.ts decodes them.
 */
export interface CsiClient {
  readonly Identity: Readonly<Record<IdentityMethod, Call>>;
  readonly Controller: Readonly<Record<ControllerMethod, Call>>;
  readonly GroupController: Readonly<Record<GroupControllerMethod, Call>>;
  readonly Node: Readonly<Record<NodeMethod, Call>>;
  close(): void;
}

export function csiClient(socket: string, protoPath: string): CsiClient {
  const v1 = (
    loadPackageDefinition(
      loadSync(protoPath, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true }),
    ) as unknown as { csi: { v1: GrpcObject } }
  ).csi.v1;
  const made: Array<{ close(): void }> = [];
  const service = <M extends string>(name: string): Readonly<Record<M, Call>> => {
    const Ctor = v1[name] as unknown as new (
      address: string,
      creds: ReturnType<typeof credentials.createInsecure>,
    ) => Record<string, (req: unknown, cb: (e: ServiceError | null, r: Record<string, unknown>) => void) => void> & {
      close(): void;
    };
    const client = new Ctor(`unix://${socket}`, credentials.createInsecure());
    made.push(client);
    return new Proxy({} as Record<M, Call>, {
      get: (_t, method: string) => (req: Record<string, unknown>) =>
        new Promise((resolve, reject) => client[method]!.call(client, req, (e, r) => (e ? reject(e) : resolve(r)))),
    });
  };
  return {
    Identity: service('Identity'),
    Controller: service('Controller'),
    GroupController: service('GroupController'),
    Node: service('Node'),
    close: () => {
      for (const c of made) c.close();
    },
  };
}
