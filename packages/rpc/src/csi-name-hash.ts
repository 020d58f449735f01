import { createHash } from 'node:crypto';

/**
 * The stable short form of a CSI volume or snapshot name (any UTF-8, up to 128 bytes): 32 hex
 * digits of its SHA-256. The CSI driver csi.dotmesh.io derives the dot, branch and commit names
 * it makes from it, so a retried call finds what the first one made; the operator's volume
 * populator names its PersistentVolumes and volume records with it, as the driver would.
 */
export function csiNameHash(name: string): string {
  return createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 32);
}
