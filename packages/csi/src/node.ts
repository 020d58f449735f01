import { mkdir, rmdir, statfs } from 'node:fs/promises';
import { status as Status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { isReadOnlyMode, requireCapability } from './capabilities.ts';
import { branchOf } from './controller-steps.ts';
import type { Clients } from './credentials.ts';
import type { Secrets, VolumeCapability } from './csi-types.ts';
import { type Failpoint, NO_FAILPOINTS } from './failpoints.ts';
import { CsiError, invalid, isCode, notFound } from './grpc-errors.ts';
import { parseVolumeId, type VolumeRef } from './ids.ts';
import { bindMount, mountAt, unmountAll } from './mounts.ts';
import { type Log, unary } from './unary.ts';

export const NODE_CAPABILITIES = [
  'STAGE_UNSTAGE_VOLUME',
  'GET_VOLUME_STATS',
  'GET_VOLUME_HEALTH',
  'SINGLE_NODE_MULTI_WRITER',
] as const;

/** Node calls on one path run one at a time (a retried call must not race the first). */
class PathLocks {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(path: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(path) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#tails.set(path, tail);
    void tail.then(() => {
      if (this.#tails.get(path) === tail) this.#tails.delete(path);
    });
    return next;
  }
}

function requireRef(id: string, call: string): VolumeRef {
  if (!id) throw invalid(`${call}: volume_id is required`);
  const ref = parseVolumeId(id);
  if (!ref) throw notFound(`${call}: no volume ${id.slice(0, 200)}`);
  return ref;
}

/**
 * The Node service. Staging bind mounts the branch's live data (the subdot's directory) at the
 * staging path; publishing bind mounts the staging path at the target (read-only when asked).
 * Each mount is recorded with the server first (PublishBranch: the branch is then in use, and
 * the server refuses when this node does not master it), and unrecorded after the unmount. A
 * mount found in place on a retry is kept: calls are idempotent and a killed driver leaves
 * nothing a retry does not finish or undo.
 */
export function nodeService(
  clients: Clients,
  nodeId: string,
  log: Log,
  failpoint: Failpoint = NO_FAILPOINTS,
): UntypedServiceImplementation {
  const locks = new PathLocks();

  const stage = async (req: {
    volume_id: string;
    staging_target_path: string;
    volume_capability: VolumeCapability | null;
    secrets: Secrets;
  }) => {
    if (!req.volume_id) throw invalid('NodeStageVolume: volume_id is required');
    if (!req.staging_target_path) throw invalid('NodeStageVolume: staging_target_path is required');
    const cap = requireCapability(req.volume_capability, 'NodeStageVolume');
    const ref = requireRef(req.volume_id, 'NodeStageVolume');
    const client = clients.forSecrets(req.secrets, 'NodeStageVolume');
    const readOnly = isReadOnlyMode(cap);
    return locks.run(req.staging_target_path, async () => {
      const host = await client.call('PublishBranch', {
        FilesystemId: ref.branchId,
        Subdot: ref.subdot,
        Volume: req.volume_id,
        Target: req.staging_target_path,
        ReadOnly: readOnly,
      });
      failpoint('node-stage.after-record');
      await mkdir(req.staging_target_path, { recursive: true });
      if (!(await mountAt(req.staging_target_path))) await bindMount(host, req.staging_target_path, readOnly);
      failpoint('node-stage.after-mount');
      return {};
    });
  };

  const unstage = async (req: { volume_id: string; staging_target_path: string }) => {
    if (!req.volume_id) throw invalid('NodeUnstageVolume: volume_id is required');
    if (!req.staging_target_path) throw invalid('NodeUnstageVolume: staging_target_path is required');
    return locks.run(req.staging_target_path, async () => {
      await unmountAll(req.staging_target_path);
      await unrecord(req.volume_id, req.staging_target_path);
      return {};
    });
  };

  const publish = async (req: {
    volume_id: string;
    staging_target_path: string;
    target_path: string;
    volume_capability: VolumeCapability | null;
    readonly: boolean;
    secrets: Secrets;
  }) => {
    if (!req.volume_id) throw invalid('NodePublishVolume: volume_id is required');
    if (!req.target_path) throw invalid('NodePublishVolume: target_path is required');
    const cap = requireCapability(req.volume_capability, 'NodePublishVolume');
    if (!req.staging_target_path) {
      throw invalid('NodePublishVolume: staging_target_path is required (the volume is staged first)');
    }
    const ref = requireRef(req.volume_id, 'NodePublishVolume');
    const client = clients.forSecrets(req.secrets, 'NodePublishVolume');
    const readOnly = req.readonly || isReadOnlyMode(cap);
    return locks.run(req.target_path, async () => {
      if (cap.access_mode?.mode === 'SINGLE_NODE_SINGLE_WRITER') {
        const uses = await client.call('BranchPublications', ref.branchId);
        const other = uses.Uses.find(
          (u) =>
            u.Kind === 'mount' &&
            u.Volume === req.volume_id &&
            u.Target !== req.target_path &&
            u.Target !== req.staging_target_path,
        );
        if (other) {
          throw new CsiError(
            Status.FAILED_PRECONDITION,
            `NodePublishVolume: a single-writer volume is published at ${other.Target} already`,
          );
        }
      }
      await client.call('PublishBranch', {
        FilesystemId: ref.branchId,
        Subdot: ref.subdot,
        Volume: req.volume_id,
        Target: req.target_path,
        ReadOnly: readOnly,
      });
      failpoint('node-publish.after-record');
      const staged = await mountAt(req.staging_target_path);
      if (!staged) {
        throw new CsiError(
          Status.FAILED_PRECONDITION,
          `NodePublishVolume: the volume is not staged at ${req.staging_target_path}`,
        );
      }
      await mkdir(req.target_path, { recursive: true });
      const there = await mountAt(req.target_path);
      if (there) {
        if (there.readOnly !== readOnly) {
          throw new CsiError(
            Status.ALREADY_EXISTS,
            `NodePublishVolume: published at ${req.target_path} already, ${there.readOnly ? 'read-only' : 'read-write'}`,
          );
        }
        return {};
      }
      await bindMount(req.staging_target_path, req.target_path, readOnly);
      failpoint('node-publish.after-mount');
      return {};
    });
  };

  const unpublish = async (req: { volume_id: string; target_path: string }) => {
    if (!req.volume_id) throw invalid('NodeUnpublishVolume: volume_id is required');
    if (!req.target_path) throw invalid('NodeUnpublishVolume: target_path is required');
    return locks.run(req.target_path, async () => {
      await unmountAll(req.target_path);
      await rmdir(req.target_path).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
      await unrecord(req.volume_id, req.target_path);
      return {};
    });
  };

  /** Removes the server's record of a mount (the driver's own user: these calls carry no secrets). */
  const unrecord = async (volumeId: string, target: string) => {
    const ref = parseVolumeId(volumeId);
    if (!ref) return;
    try {
      await clients.own.call('UnpublishBranch', { FilesystemId: ref.branchId, Target: target });
    } catch (e) {
      if (!isCode(e, 'DOT_NOT_FOUND')) throw e;
    }
  };

  const stats = async (req: { volume_id: string; volume_path: string }) => {
    if (!req.volume_id) throw invalid('NodeGetVolumeStats: volume_id is required');
    if (!req.volume_path) throw invalid('NodeGetVolumeStats: volume_path is required');
    const ref = requireRef(req.volume_id, 'NodeGetVolumeStats');
    if (!(await branchOf(clients.own, ref))) throw notFound(`NodeGetVolumeStats: no volume ${req.volume_id}`);
    if (!(await mountAt(req.volume_path))) throw notFound(`NodeGetVolumeStats: the volume is not mounted at ${req.volume_path}`);
    const s = await statfs(req.volume_path);
    return {
      usage: [
        { unit: 'BYTES', total: s.blocks * s.bsize, available: s.bavail * s.bsize, used: (s.blocks - s.bfree) * s.bsize },
        { unit: 'INODES', total: s.files, available: s.ffree, used: s.files - s.ffree },
      ],
    };
  };

  const health = async (req: { volume_id: string; volume_publish_path: string; staging_target_path: string }) => {
    const ref = requireRef(req.volume_id, 'NodeGetVolumeHealth');
    const b = await branchOf(clients.own, ref);
    if (!b) throw notFound(`NodeGetVolumeHealth: no volume ${req.volume_id}`);
    const health_statuses: Array<{ status: string; reason: string; message: string }> = [];
    if (b.Master !== nodeId) {
      health_statuses.push({
        status: 'INACCESSIBLE',
        reason: 'NotHere',
        message: `node ${b.Master || '(none)'} masters the branch, not this one`,
      });
    }
    for (const path of [req.staging_target_path, req.volume_publish_path]) {
      if (path && !(await mountAt(path)))
        health_statuses.push({ status: 'INACCESSIBLE', reason: 'NotMounted', message: `nothing is mounted at ${path}` });
    }
    return { volume_health: { volume_id: req.volume_id, health_statuses } };
  };

  return {
    NodeStageVolume: unary('NodeStageVolume', stage, log, { CONFLICT: Status.ALREADY_EXISTS, DOT_NOT_FOUND: Status.NOT_FOUND }),
    NodeUnstageVolume: unary('NodeUnstageVolume', unstage, log),
    NodePublishVolume: unary('NodePublishVolume', publish, log, {
      CONFLICT: Status.ALREADY_EXISTS,
      DOT_NOT_FOUND: Status.NOT_FOUND,
    }),
    NodeUnpublishVolume: unary('NodeUnpublishVolume', unpublish, log),
    NodeGetVolumeStats: unary('NodeGetVolumeStats', stats, log),
    NodeGetVolumeHealth: unary('NodeGetVolumeHealth', health, log),
    NodeGetCapabilities: unary(
      'NodeGetCapabilities',
      async () => ({ capabilities: NODE_CAPABILITIES.map((type) => ({ rpc: { type } })) }),
      log,
    ),
    NodeGetInfo: unary('NodeGetInfo', async () => ({ node_id: nodeId, max_volumes_per_node: 0 }), log),
  };
}
