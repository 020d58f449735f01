import { ApiException, type CoordinationV1Api, type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import type { Logger } from './logger.ts';

/**
 * Leader election with a Lease (coordination.k8s.io/v1), so that several operator replicas can
 * run and exactly one acts. A candidate takes the Lease when it is free or its holder has not
 * renewed it within `leaseDurationSeconds`; writes carry the resourceVersion read, so two
 * candidates cannot both win. The leader renews every `renewMs`; if it cannot renew before its
 * lease runs out it has lost leadership (`lost` resolves) and must stop acting.
 */
export interface LeaderOptions {
  readonly api: CoordinationV1Api;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly log: Logger;
  readonly leaseDurationSeconds?: number;
  readonly renewMs?: number;
  readonly retryMs?: number;
  readonly signal?: AbortSignal;
}

export interface Leadership {
  /** Resolves when leadership is lost (not renewed in time) or given up. */
  readonly lost: Promise<void>;
  /** Gives the Lease up (clears its holder) so a standby takes over at once. */
  release(): Promise<void>;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

/** Whether `lease` may be taken by `identity` at `now`. */
export function leaseTakeable(lease: V1Lease, identity: string, now: number): boolean {
  const spec = lease.spec ?? {};
  if (!spec.holderIdentity || spec.holderIdentity === identity) return true;
  const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
  return renewed + (spec.leaseDurationSeconds ?? 15) * 1000 < now;
}

async function tryTake(o: LeaderOptions, duration: number): Promise<boolean> {
  const now = new V1MicroTime();
  let lease: V1Lease | undefined;
  try {
    lease = await o.api.readNamespacedLease({ name: o.name, namespace: o.namespace });
  } catch (e) {
    if (!(e instanceof ApiException && e.code === 404)) throw e;
  }
  const spec = { holderIdentity: o.identity, leaseDurationSeconds: duration, acquireTime: now, renewTime: now };
  try {
    if (!lease) {
      await o.api.createNamespacedLease({
        namespace: o.namespace,
        body: { metadata: { name: o.name, namespace: o.namespace }, spec: { ...spec, leaseTransitions: 0 } },
      });
      return true;
    }
    if (!leaseTakeable(lease, o.identity, Date.now())) return false;
    const mine = lease.spec?.holderIdentity === o.identity;
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (mine ? 0 : 1);
    await o.api.replaceNamespacedLease({
      name: o.name,
      namespace: o.namespace,
      body: {
        ...lease,
        spec: { ...lease.spec, ...spec, acquireTime: mine ? lease.spec?.acquireTime : now, leaseTransitions: transitions },
      },
    });
    return true;
  } catch (e) {
    if (e instanceof ApiException && (e.code === 409 || e.code === 404)) return false; // another candidate wrote first
    throw e;
  }
}

/** Waits until this candidate holds the Lease (or `signal` aborts: undefined). */
export async function acquireLeadership(o: LeaderOptions): Promise<Leadership | undefined> {
  const duration = o.leaseDurationSeconds ?? 15;
  const retryMs = o.retryMs ?? 2_000;
  let logged = false;
  while (!o.signal?.aborted) {
    const won = await tryTake(o, duration).catch((e) => {
      o.log.warn('leader election: could not read or write the Lease', { error: String((e as Error)?.message ?? e) });
      return false;
    });
    if (won) break;
    if (!logged) o.log.info('another operator leads; standing by', { lease: `${o.namespace}/${o.name}` });
    logged = true;
    await sleep(retryMs, o.signal);
  }
  if (o.signal?.aborted) return undefined;
  o.log.info('leading', { lease: `${o.namespace}/${o.name}`, identity: o.identity });
  let lastRenew = Date.now();
  let released = false;
  let lose!: () => void;
  const lost = new Promise<void>((resolve) => {
    lose = resolve;
  });
  const renewMs = o.renewMs ?? Math.floor((duration * 1000) / 3);
  const timer = setInterval(async () => {
    if (released) return;
    const ok = await tryTake(o, duration).catch(() => false);
    if (ok) lastRenew = Date.now();
    else if (Date.now() - lastRenew > duration * 1000 - renewMs) {
      clearInterval(timer);
      o.log.error('lost the leader Lease', { lease: `${o.namespace}/${o.name}` });
      lose();
    }
  }, renewMs);
  return {
    lost,
    async release() {
      released = true;
      clearInterval(timer);
      try {
        const lease = await o.api.readNamespacedLease({ name: o.name, namespace: o.namespace });
        if (lease.spec?.holderIdentity === o.identity) {
          await o.api.replaceNamespacedLease({
            name: o.name,
            namespace: o.namespace,
            body: { ...lease, spec: { ...lease.spec, holderIdentity: '' } },
          });
        }
      } catch {
        // Not released: a standby takes over when the lease runs out.
      }
      lose();
    },
  };
}
