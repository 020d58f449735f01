import {
  ApiException,
  CoreV1Api,
  type KubeConfig,
  makeInformer,
  StorageV1Api,
  type V1PersistentVolume,
  type V1PersistentVolumeClaim,
} from '@kubernetes/client-node';
import type { Provisioner, ProvisionerApi } from './provisioner.ts';

/** The component name Events carry. */
const COMPONENT = 'dotmesh-dynamic-provisioner';

function isStatus(e: unknown, code: number): boolean {
  return e instanceof ApiException && e.code === code;
}

/** ProvisionerApi over a real API server. */
export function kubeApi(kc: KubeConfig, instance: string): ProvisionerApi {
  const core = kc.makeApiClient(CoreV1Api);
  const storage = kc.makeApiClient(StorageV1Api);
  return {
    storageClass: (name) =>
      storage.readStorageClass({ name }).catch((e: unknown) => {
        if (isStatus(e, 404)) return undefined;
        throw e;
      }),
    createPv: (pv) =>
      core.createPersistentVolume({ body: pv }).then(
        () => true,
        (e: unknown) => {
          if (isStatus(e, 409)) return false;
          throw e;
        },
      ),
    deletePv: (name) =>
      core.deletePersistentVolume({ name }).then(
        () => undefined,
        (e: unknown) => {
          if (!isStatus(e, 404)) throw e;
        },
      ),
    event: async (pvc, type, reason, message) => {
      const now = new Date();
      const namespace = pvc.metadata?.namespace ?? 'default';
      await core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${pvc.metadata?.name ?? 'pvc'}.`, namespace },
          involvedObject: {
            apiVersion: 'v1',
            kind: 'PersistentVolumeClaim',
            namespace,
            name: pvc.metadata?.name ?? '',
            uid: pvc.metadata?.uid ?? '',
            resourceVersion: pvc.metadata?.resourceVersion ?? '',
          },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: COMPONENT },
          reportingComponent: COMPONENT,
          reportingInstance: instance,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    },
  };
}

/**
 * Watches PVCs and PVs (informers: list, then watch; restarted after an error) and hands each
 * to the provisioner; every `resyncMs` all cached objects are handed over again, so a refused
 * or failed one is retried (a StorageClass made after its PVC, an API error). Returns a stop
 * function.
 */
export async function runInformers(
  kc: KubeConfig,
  provisioner: Provisioner,
  o: { resyncMs: number; log: (fields: Record<string, unknown>, message: string) => void },
): Promise<() => void> {
  const core = kc.makeApiClient(CoreV1Api);
  const claims = makeInformer<V1PersistentVolumeClaim>(kc, '/api/v1/persistentvolumeclaims', () =>
    core.listPersistentVolumeClaimForAllNamespaces(),
  );
  const volumes = makeInformer<V1PersistentVolume>(kc, '/api/v1/persistentvolumes', () => core.listPersistentVolume());
  let stopped = false;
  const handle = (what: string, p: Promise<void>) =>
    p.catch((err: unknown) =>
      o.log({ err: String((err as Error)?.message ?? err) }, `${what} failed (retried at the next resync)`),
    );
  const onClaim = (pvc: V1PersistentVolumeClaim) => void handle('PVC', provisioner.claim(pvc));
  const onVolume = (pv: V1PersistentVolume) => void handle('PV', provisioner.volume(pv));
  claims.on('add', onClaim);
  claims.on('update', onClaim);
  claims.on('delete', (pvc) => provisioner.forget(pvc));
  volumes.on('add', onVolume);
  volumes.on('update', onVolume);
  for (const [what, informer] of [
    ['PVC', claims],
    ['PV', volumes],
  ] as const) {
    informer.on('error', (err: unknown) => {
      o.log({ err: String((err as Error)?.message ?? err) }, `${what} watch failed; restarting it`);
      setTimeout(() => {
        if (!stopped) void informer.start().catch(() => undefined);
      }, 2000).unref();
    });
  }
  await claims.start();
  await volumes.start();
  const resync = setInterval(() => {
    for (const pvc of claims.list()) onClaim(pvc);
    for (const pv of volumes.list()) onVolume(pv);
  }, o.resyncMs);
  return () => {
    stopped = true;
    clearInterval(resync);
    void claims.stop();
    void volumes.stop();
  };
}
