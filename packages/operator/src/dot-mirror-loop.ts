import type { DotmeshClient } from '@dotmesh/rpc/client';
import { type CustomObjects, createObject, deleteObject, listObjects, writeStatus } from './custom-objects.ts';
import { nodeNamesById, planMirror } from './dot-mirror.ts';
import { API_VERSION, DOTS, type DotObject } from './dot-resources.ts';
import type { Logger } from './logger.ts';

/**
 * One mirror step: the dots as `server` lists them (AllDotsAndBranches, as admin: every
 * namespace's dots) made the Dot objects of the operator's namespace (dot-mirror.ts plans it).
 * A failed call is logged and left to the next step. Returns how many objects changed.
 */
export async function mirrorDots(
  o: CustomObjects & { readonly log: Logger },
  server: DotmeshClient,
  nodeByAddress: ReadonlyMap<string, string>,
): Promise<number> {
  const all = await server.call('AllDotsAndBranches', {});
  const existing = await listObjects<DotObject & { metadata: { name: string } }>(o, DOTS);
  const plan = planMirror(all, existing, nodeNamesById(all.Servers, nodeByAddress));
  const old = new Map(existing.map((d) => [d.metadata.name, d.status]));
  let changed = 0;
  const step = async (what: string, name: string, f: () => Promise<void>) => {
    try {
      await f();
      changed++;
    } catch (e) {
      o.log.warn(`could not ${what} a Dot object; retrying at the next mirror step`, {
        dot: name,
        error: String((e as Error)?.message ?? e),
      });
    }
  };
  for (const { name, status } of plan.create) {
    await step('create', name, async () => {
      await createObject(o, DOTS, { apiVersion: API_VERSION, kind: 'Dot', metadata: { name, namespace: o.namespace } });
      await writeStatus(o, DOTS, name, undefined, status);
    });
  }
  for (const { name, status } of plan.update) await step('update', name, () => writeStatus(o, DOTS, name, old.get(name), status));
  for (const name of plan.delete) await step('delete', name, () => deleteObject(o, DOTS, name));
  if (plan.create.length + plan.delete.length > 0) {
    o.log.info('mirrored dots', { created: plan.create.map((c) => c.name), deleted: plan.delete });
  }
  return changed;
}
