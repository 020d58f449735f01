import type { V1PersistentVolume, V1PersistentVolumeClaim, V1StorageClass } from '@kubernetes/client-node';
import { decide, PROVISIONER_NAME, shouldDeletePv, storageClassOf } from './decide.ts';

/** The Kubernetes API as the provisioner uses it (kube.ts; tests may give another). */
export interface ProvisionerApi {
  storageClass(name: string): Promise<V1StorageClass | undefined>;
  /** Creates the PV; false when one of that name exists already (made by an earlier pass). */
  createPv(pv: V1PersistentVolume): Promise<boolean>;
  deletePv(name: string): Promise<void>;
  event(pvc: V1PersistentVolumeClaim, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

export type ProvisionerLog = (fields: Record<string, unknown>, message: string) => void;

/**
 * The dynamic provisioner's actions: a PV for each pending PVC of its classes (decide.ts), an
 * Event on each PVC it refuses (once per PVC and message, not at every resync), and the removal
 * of its released PVs whose reclaim policy is Delete (the dot stays).
 */
export class Provisioner {
  readonly #api: ProvisionerApi;
  readonly #name: string;
  readonly #log: ProvisionerLog;
  /** The last refusal reported per PVC uid. */
  readonly #reported = new Map<string, string>();

  constructor(o: { api: ProvisionerApi; log: ProvisionerLog; name?: string }) {
    this.#api = o.api;
    this.#log = o.log;
    this.#name = o.name ?? PROVISIONER_NAME;
  }

  /** One PVC (added, changed or resynced). Errors of the API are thrown: the caller retries at the next resync. */
  async claim(pvc: V1PersistentVolumeClaim): Promise<void> {
    const className = storageClassOf(pvc);
    if (!className || pvc.status?.phase !== 'Pending' || pvc.spec?.volumeName) return;
    const decision = decide(pvc, await this.#api.storageClass(className), this.#name);
    const uid = pvc.metadata?.uid ?? '';
    const claim = `${pvc.metadata?.namespace}/${pvc.metadata?.name}`;
    if (decision.kind === 'ignore') return;
    if (decision.kind === 'refuse') {
      if (this.#reported.get(uid) === decision.message) return;
      // Marked before the await: a watch event and a resync of the same PVC may overlap.
      this.#reported.set(uid, decision.message);
      this.#log({ claim, reason: decision.reason, refused: decision.message }, 'PVC refused');
      await this.#api.event(pvc, 'Warning', decision.reason, decision.message).catch((e: unknown) => {
        this.#reported.delete(uid);
        throw e;
      });
      return;
    }
    this.#reported.delete(uid);
    const created = await this.#api.createPv(decision.pv);
    if (!created) return;
    const options = decision.pv.spec?.flexVolume?.options ?? {};
    this.#log(
      { claim, pv: decision.pv.metadata?.name, dot: `${options.namespace}/${options.name}`, subdot: options.subdot },
      'PV created',
    );
    await this.#api.event(
      pvc,
      'Normal',
      'ProvisioningSucceeded',
      `Successfully provisioned volume ${decision.pv.metadata?.name} for dot ${options.namespace}/${options.name}`,
    );
  }

  /** A PVC gone: forget its reported refusal. */
  forget(pvc: V1PersistentVolumeClaim): void {
    this.#reported.delete(pvc.metadata?.uid ?? '');
  }

  /** One PV (added, changed or resynced): removed when it is ours, released and reclaimed by Delete. */
  async volume(pv: V1PersistentVolume): Promise<void> {
    if (!shouldDeletePv(pv, this.#name)) return;
    await this.#api.deletePv(pv.metadata?.name ?? '');
    this.#log({ pv: pv.metadata?.name, dot: pv.spec?.flexVolume?.options }, 'released PV deleted (the dot is kept)');
  }
}
