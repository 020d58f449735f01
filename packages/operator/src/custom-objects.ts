import {
  ApiException,
  type CustomObjectsApi,
  type KubernetesObject,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { GROUP, VERSION } from './dot-resources.ts';

/**
 * The operator's calls on its custom resources (group dotmesh.io, its namespace): list, create,
 * delete, and status writes through the status subresource (a JSON merge patch that also
 * removes the fields the new status no longer has, so the status is exactly what was computed).
 */
const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface CustomObjects {
  readonly custom: CustomObjectsApi;
  readonly namespace: string;
}

export async function listObjects<T extends KubernetesObject>(o: CustomObjects, plural: string): Promise<T[]> {
  const list = (await o.custom.listNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: o.namespace,
    plural,
  })) as {
    items?: T[];
  };
  return list.items ?? [];
}

/** The object, or undefined when there is none of that name. */
export async function getObject<T extends KubernetesObject>(
  o: CustomObjects,
  plural: string,
  name: string,
): Promise<T | undefined> {
  try {
    return (await o.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: o.namespace,
      plural,
      name,
    })) as T;
  } catch (e) {
    if (e instanceof ApiException && e.code === 404) return undefined;
    throw e;
  }
}

export async function createObject(o: CustomObjects, plural: string, body: object): Promise<void> {
  await o.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: o.namespace, plural, body });
}

export async function deleteObject(o: CustomObjects, plural: string, name: string): Promise<void> {
  try {
    await o.custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: o.namespace, plural, name });
  } catch (e) {
    if (!(e instanceof ApiException && e.code === 404)) throw e;
  }
}

/** Sets the status of `name` to `status` (fields of `old` missing from it are removed). */
export async function writeStatus(
  o: CustomObjects,
  plural: string,
  name: string,
  old: object | undefined,
  status: object,
): Promise<void> {
  await o.custom.patchNamespacedCustomObjectStatus(
    { group: GROUP, version: VERSION, namespace: o.namespace, plural, name, body: { status: statusPatch(old, status) } },
    MERGE_PATCH,
  );
}

/**
 * A merge patch turning status `old` into `status`: its fields (objects patched field by field,
 * arrays whole), and null for each field of `old` it lacks.
 */
export function statusPatch(old: object | undefined, status: object): Record<string, unknown> {
  const before = (old ?? {}) as Record<string, unknown>;
  const patch: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(status)) {
    patch[key] = isPlainObject(value) && isPlainObject(before[key]) ? statusPatch(before[key], value) : value;
  }
  for (const key of Object.keys(before)) if (!(key in status)) patch[key] = null;
  return patch;
}

function isPlainObject(v: unknown): v is object {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
