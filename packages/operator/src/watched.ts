import type { Informer, KubernetesObject, ObjectCache } from '@kubernetes/client-node';
import type { Logger } from './logger.ts';

/** How long a failed watch waits before it lists and watches again. */
export const WATCH_RETRY_MS = 2_000;

/**
 * `informer` (a list, then a watch) calling `changed` on the events named by `on` (default every
 * add, update and delete), restarted WATCH_RETRY_MS after an error until `stopped()`. The caller
 * starts it and stops it. `on.update` may filter updates by the object's new state (e.g. only
 * spec changes, not the status writes the operator makes itself: see specChanged).
 */
export function watched<T extends KubernetesObject>(
  log: Logger,
  what: string,
  informer: Informer<T> & ObjectCache<T>,
  changed: () => void,
  stopped: () => boolean,
  on: { readonly add?: boolean; readonly delete?: boolean; readonly update?: boolean | ((now: T) => boolean) } = {},
): Informer<T> & ObjectCache<T> {
  if (on.add ?? true) informer.on('add', changed);
  if (on.delete ?? true) informer.on('delete', changed);
  const update = on.update ?? true;
  if (update === true) informer.on('update', changed);
  else if (typeof update === 'function')
    informer.on('update', (now: T) => {
      if (update(now)) changed();
    });
  let logged = { error: '', at: 0 };
  informer.on('error', (err: unknown) => {
    if (stopped()) return;
    const error = String((err as Error)?.message ?? err);
    // The same failure at every retry (a resource not served yet) is logged once a minute.
    if (error !== logged.error || Date.now() - logged.at >= 60_000) {
      log.warn('watch failed; restarting it', { what, error });
      logged = { error, at: Date.now() };
    }
    setTimeout(() => {
      if (!stopped()) informer.start().catch(() => {});
    }, WATCH_RETRY_MS).unref();
  });
  return informer;
}

/**
 * An update filter passing an object's first sighting and every change of its
 * `metadata.generation` (which the API server bumps for spec changes only, when status is a
 * subresource), not writes of its status.
 */
export function specChanged(): (o: KubernetesObject) => boolean {
  const seen = new Map<string, number | undefined>();
  return (o) => {
    const uid = o.metadata?.uid ?? '';
    const generation = o.metadata?.generation;
    const changed = !seen.has(uid) || seen.get(uid) !== generation;
    seen.set(uid, generation);
    return changed;
  };
}
