import { CsiError, invalid, type Log, notFound, unary, type VolumeCapability } from '@dotmesh/csi';
import { status as Status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { required, requireSupported, ZONE_KEY, zoneOfNode } from './capabilities.ts';
import type { DiskRecord, Disks } from './disks.ts';
import { Serial } from './serial.ts';

const MIB = 1024 * 1024;
/** The size of a volume whose request names none. */
const DEFAULT_BYTES = 1024 * MIB;

export const CONTROLLER_CAPABILITIES = [
  'CREATE_DELETE_VOLUME',
  'PUBLISH_UNPUBLISH_VOLUME',
  'PUBLISH_READONLY',
  'EXPAND_VOLUME',
  'SINGLE_NODE_MULTI_WRITER',
] as const;

interface Topology {
  readonly segments: Readonly<Record<string, string>>;
}

interface CreateRequest {
  readonly name: string;
  readonly capacity_range?: { readonly required_bytes: number; readonly limit_bytes: number } | null;
  readonly volume_capabilities: readonly VolumeCapability[];
  readonly volume_content_source?: object | null;
  readonly accessibility_requirements?: {
    readonly requisite: readonly Topology[];
    readonly preferred: readonly Topology[];
  } | null;
}

/**
 * The Controller service: disks made in a zone the request's topology allows, attached to one
 * node of their own zone at a time (ControllerPublishVolume, as the attach-detach controller
 * drives it through csi-attacher), grown online (the node then grows the filesystem).
 */
export function controllerService(disks: Disks, zones: readonly string[], log: Log): UntypedServiceImplementation {
  const serial = new Serial();
  const one = <Req, Res>(method: string, fn: (req: Req) => Promise<Res>) =>
    unary<Req, Res>(method, (req) => serial.run(() => fn(req)), log);
  return {
    CreateVolume: one('CreateVolume', async (req: CreateRequest) => {
      const name = required(req.name, 'name', 'CreateVolume');
      requireSupported(req.volume_capabilities, 'CreateVolume');
      if (req.volume_content_source) throw invalid('CreateVolume: volume content sources are not supported');
      const bytes = sizeFor(req.capacity_range);
      const zone = pickZone(req.accessibility_requirements, zones);
      return { volume: volumeOf(await disks.create(name, bytes, zone)) };
    }),
    DeleteVolume: one('DeleteVolume', async (req: { volume_id: string }) => {
      const disk = await disks.get(required(req.volume_id, 'volume_id', 'DeleteVolume'));
      if (!disk) return {};
      if (disk.attachedTo) {
        throw new CsiError(
          Status.FAILED_PRECONDITION,
          `volume ${disk.id} is attached to node ${disk.attachedTo}: detach it first`,
        );
      }
      await disks.remove(disk);
      return {};
    }),
    ControllerPublishVolume: one(
      'ControllerPublishVolume',
      async (req: { volume_id: string; node_id: string; volume_capability: VolumeCapability | null; readonly: boolean }) => {
        const id = required(req.volume_id, 'volume_id', 'ControllerPublishVolume');
        const node = required(req.node_id, 'node_id', 'ControllerPublishVolume');
        if (!req.volume_capability) throw invalid('ControllerPublishVolume: volume_capability is required');
        requireSupported([req.volume_capability], 'ControllerPublishVolume');
        const disk = await disks.require(id);
        const zone = zoneOfNode(node);
        if (zone === undefined || !zones.includes(zone))
          throw notFound(`node ${JSON.stringify(node.slice(0, 64))} does not exist`);
        if (zone !== disk.zone) {
          throw new CsiError(
            Status.FAILED_PRECONDITION,
            `volume ${disk.id} is in zone ${disk.zone}; node ${node} is in zone ${zone}`,
          );
        }
        if (disk.attachedTo && disk.attachedTo !== node) {
          throw new CsiError(Status.FAILED_PRECONDITION, `volume ${disk.id} is attached to node ${disk.attachedTo}`);
        }
        if (disk.attachedTo === node && Boolean(disk.readOnly) !== req.readonly) {
          throw new CsiError(
            Status.ALREADY_EXISTS,
            `volume ${disk.id} is attached to node ${node} with readonly=${Boolean(disk.readOnly)}`,
          );
        }
        if (!disk.attachedTo) await disks.setAttachment(disk, node, req.readonly);
        return { publish_context: { image: disks.imagePath(disk) } };
      },
    ),
    ControllerUnpublishVolume: one('ControllerUnpublishVolume', async (req: { volume_id: string; node_id: string }) => {
      const disk = await disks.get(required(req.volume_id, 'volume_id', 'ControllerUnpublishVolume'));
      // Not found, or not attached to that node: it is detached from it, which is what was asked.
      if (disk?.attachedTo && (req.node_id === '' || req.node_id === disk.attachedTo)) await disks.setAttachment(disk, undefined);
      return {};
    }),
    ControllerExpandVolume: one(
      'ControllerExpandVolume',
      async (req: { volume_id: string; capacity_range: { required_bytes: number; limit_bytes: number } | null }) => {
        const disk = await disks.require(required(req.volume_id, 'volume_id', 'ControllerExpandVolume'));
        if (!req.capacity_range) throw invalid('ControllerExpandVolume: capacity_range is required');
        const grown = await disks.grow(disk, sizeFor(req.capacity_range));
        return { capacity_bytes: grown.bytes, node_expansion_required: true };
      },
    ),
    ValidateVolumeCapabilities: one(
      'ValidateVolumeCapabilities',
      async (req: { volume_id: string; volume_capabilities: readonly VolumeCapability[] }) => {
        const id = required(req.volume_id, 'volume_id', 'ValidateVolumeCapabilities');
        if (!req.volume_capabilities?.length) throw invalid('ValidateVolumeCapabilities: volume_capabilities are required');
        await disks.require(id);
        try {
          requireSupported(req.volume_capabilities, 'ValidateVolumeCapabilities');
        } catch (e) {
          return { message: (e as Error).message };
        }
        return { confirmed: { volume_capabilities: req.volume_capabilities } };
      },
    ),
    ControllerGetCapabilities: unary(
      'ControllerGetCapabilities',
      async () => ({ capabilities: CONTROLLER_CAPABILITIES.map((type) => ({ rpc: { type } })) }),
      log,
    ),
  };
}

/** The CSI Volume of `disk`: its id, size, and its zone as its accessible topology. */
function volumeOf(disk: DiskRecord) {
  return {
    volume_id: disk.id,
    capacity_bytes: disk.bytes,
    volume_context: { zone: disk.zone },
    accessible_topology: [{ segments: { [ZONE_KEY]: disk.zone } }],
  };
}

/** The bytes a capacity range asks for, rounded up to MiB; OUT_OF_RANGE if the limit forbids it. */
export function sizeFor(range: { required_bytes: number; limit_bytes: number } | null | undefined): number {
  const requiredBytes = range?.required_bytes ?? 0;
  const limit = range?.limit_bytes ?? 0;
  if (requiredBytes < 0 || limit < 0) throw invalid('capacity_range: bytes must not be negative');
  const wanted = requiredBytes > 0 ? requiredBytes : limit > 0 ? Math.min(DEFAULT_BYTES, limit) : DEFAULT_BYTES;
  const bytes = Math.ceil(wanted / MIB) * MIB;
  if (limit > 0 && bytes > limit) {
    throw new CsiError(Status.OUT_OF_RANGE, `capacity_range: ${requiredBytes} bytes (in whole MiB) exceed the limit of ${limit}`);
  }
  return bytes;
}

/** The zone a new disk goes to: the first preferred, else the first requisite, zone this cloud has; else its first zone. */
export function pickZone(
  req: { readonly requisite: readonly Topology[]; readonly preferred: readonly Topology[] } | null | undefined,
  zones: readonly string[],
): string {
  const asked = [...(req?.preferred ?? []), ...(req?.requisite ?? [])].map((t) => t.segments[ZONE_KEY]);
  if (asked.length === 0) return zones[0]!;
  const zone = asked.find((z) => z !== undefined && zones.includes(z));
  if (zone === undefined) {
    throw new CsiError(
      Status.RESOURCE_EXHAUSTED,
      `no zone of this cloud (${zones.join(', ')}) meets the accessibility requirements`,
    );
  }
  return zone;
}
