import { DotmeshError, type ErrorCode, isDotmeshError, volumeRecordMetadata } from '@dotmesh/core';
import type { DotmeshClient } from '@dotmesh/rpc/client';
import { csiNameHash } from '@dotmesh/rpc/csi-name-hash';
import {
  ApiException,
  type CoreV1Api,
  type StorageV1Api,
  type V1PersistentVolumeClaim,
  type V1StorageClass,
} from '@kubernetes/client-node';
import { createObject, getObject, writeStatus } from './custom-objects.ts';
import {
  DOT_COMMITS,
  DOT_TRANSFERS,
  type DotCommitObject,
  type DotCommitStatus,
  type DotTransferObject,
} from './dot-resources.ts';
import { redactError } from './dot-transfer-status.ts';
import type { TransferContext } from './dot-transfers.ts';
import { eventOn } from './events.ts';
import {
  type ClassSettings,
  classNamespace,
  classSettings,
  dotCommitName,
  type PopulationPlan,
  populatedPv,
  populationPlan,
  wantsPopulation,
} from './populator-spec.ts';

/**
 * The volume populator: a Pending PVC whose dataSourceRef names a DotCommit (populator-spec.ts
 * checks it, its StorageClass and the namespace rule) becomes a new branch `pvc-<claim uid>` of
 * the DotCommit's commit, served by csi.dotmesh.io through a PV the populator makes bound to the
 * claim (its claimRef), which the PV controller then binds.
 *
 * The commit: the DotCommit's `spec.commit`, else the one it was pinned to (`status.commit`),
 * else its branch's newest, then pinned. When it is not here and the DotCommit names a remote,
 * the populator makes one DotTransfer (a pull, in the operator's namespace, named after the
 * DotCommit's uid) and the DotTransfers loop runs it, as any other; every later PVC of the same
 * DotCommit finds the commit here and starts no transfer. A failed pull is final for that
 * DotCommit (as a DotTransfer is), its error on the PVC: make a new DotCommit.
 *
 * Events on the PVC (each once while it holds): Normal `Pulling` and `Populated`, Warning
 * `PopulationFailed` with the code, message and hint (redacted; no credential is ever read
 * here except the user name of the class's provisioner Secret in the operator's namespace).
 */
export interface PopulatorContext extends TransferContext {
  readonly storage: StorageV1Api;
}

/** What resolving the commit found: the commit to branch from, or a pull still running. */
type Resolved = { readonly commit: string } | { readonly pulling: string };

/** The one DotTransfer that pulls a DotCommit's commit (operator's namespace). */
const pullName = (dc: { readonly metadata: { readonly uid: string } }) => `dotcommit-${dc.metadata.uid}`;

export class Populator {
  readonly #o: PopulatorContext;
  /** Per claim uid: the last Event recorded (the same is not recorded again). */
  readonly #reported = new Map<string, string>();
  /** The claims (uids) that waited for a pull: their Populated Event names it. */
  readonly #waited = new Set<string>();

  constructor(o: PopulatorContext) {
    this.#o = o;
  }

  /** One pass over the Pending PVCs of every namespace that name a dotmesh.io source. */
  async step(): Promise<void> {
    const claims = (await this.#o.core.listPersistentVolumeClaimForAllNamespaces()).items.filter(wantsPopulation);
    const seen = new Set<string>();
    for (const pvc of claims) {
      seen.add(pvc.metadata?.uid ?? '');
      await this.#populate(pvc).catch((e) =>
        this.#o.log.warn('could not populate a PVC; retrying', {
          pvc: `${pvc.metadata?.namespace}/${pvc.metadata?.name}`,
          error: String((e as Error)?.message ?? e),
        }),
      );
    }
    for (const uid of this.#reported.keys()) if (!seen.has(uid)) this.#reported.delete(uid);
    for (const uid of this.#waited) if (!seen.has(uid)) this.#waited.delete(uid);
  }

  async #populate(pvc: V1PersistentVolumeClaim): Promise<void> {
    let plan: PopulationPlan;
    let settings: ClassSettings;
    let dc: (DotCommitObject & { metadata: { name: string; uid: string } }) | undefined;
    try {
      settings = classSettings(await this.#storageClass(pvc.spec?.storageClassName), pvc.spec?.storageClassName);
      const own = classNamespace(settings, await this.#classUser(settings));
      dc = await getObject(this.#in(pvc), DOT_COMMITS, dotCommitName(pvc));
      plan = populationPlan(pvc, settings, own, dc);
    } catch (e) {
      if (!isDotmeshError(e)) throw e;
      return this.#failed(pvc, e);
    }
    const server = await this.#o.server();
    if (!server) return this.#tell(pvc, 'Normal', 'Waiting', 'waiting for a serving Dotmesh server');
    try {
      const resolved = await this.#resolve(plan, dc!, server.client);
      if ('pulling' in resolved) {
        this.#waited.add(plan.claim.uid);
        return this.#tell(
          pvc,
          'Normal',
          'Pulling',
          `pulling ${plan.pull?.remoteDot} from ${plan.pull?.remote} (DotTransfer ${this.#o.namespace}/${resolved.pulling})`,
        );
      }
      const at = await this.#branch(plan, resolved.commit, server.client);
      await this.#createPv(populatedPv(plan, pvc, settings, { ...at, commit: resolved.commit }));
      const how = this.#waited.has(plan.claim.uid)
        ? `pulled by DotTransfer ${this.#o.namespace}/${pullName(dc!)}`
        : 'already here, no transfer';
      await this.#tell(
        pvc,
        'Normal',
        'Populated',
        `branch ${plan.newBranch} of ${plan.dot.namespace}/${plan.dot.name} from commit ${resolved.commit} (${how}); PV ${plan.newBranch}`,
      );
    } catch (e) {
      if (!isDotmeshError(e) || e.code === 'UNAVAILABLE') throw e; // try again at the next step
      return this.#failed(pvc, e);
    }
  }

  /** The commit to branch from, pulling it first (one DotTransfer per DotCommit) when it is not here. */
  async #resolve(
    plan: PopulationPlan,
    dc: DotCommitObject & { metadata: { name: string; uid: string } },
    client: DotmeshClient,
  ): Promise<Resolved> {
    const known = plan.commit ?? dc.status?.commit;
    const dotName = `${plan.dot.namespace}/${plan.dot.name}`;
    // With a remote to pull from, a dot or branch not here yet has no commits (yet).
    const commits = () =>
      this.#commits(plan, client).catch((e): string[] => {
        if (plan.pull && isDotmeshError(e) && (e.code === 'DOT_NOT_FOUND' || e.code === 'BRANCH_NOT_FOUND')) return [];
        throw e;
      });
    const name = pullName(dc);
    const ops = this.#o;
    if (known && (await commits()).includes(known)) {
      // Here (pulled, or arrived while its pull still ran): pinned once, with the pull if one was made.
      if (dc.status?.commit !== known) {
        const pulled = plan.pull && (await getObject(ops, DOT_TRANSFERS, name)) !== undefined;
        await this.#pin(plan, dc, { commit: known, dot: dotName, ...(pulled ? { transfer: name } : {}) });
      }
      return { commit: known };
    }
    if (!plan.pull) {
      if (known) {
        throw new DotmeshError('COMMIT_NOT_FOUND', `commit ${known} is not on branch ${plan.branch || 'master'} of ${dotName}`, {
          hint: 'name a DotRemote in spec.remote to pull it from, or another commit',
        });
      }
      const newest = (await commits()).at(-1);
      if (!newest) throw new DotmeshError('COMMIT_NOT_FOUND', `${dotName} has no commit on branch ${plan.branch || 'master'}`);
      await this.#pin(plan, dc, { commit: newest, dot: dotName });
      return { commit: newest };
    }
    const t = await getObject<DotTransferObject & { metadata: object }>(ops, DOT_TRANSFERS, name);
    if (!t) {
      await createObject(ops, DOT_TRANSFERS, {
        apiVersion: 'dotmesh.io/v1alpha1',
        kind: 'DotTransfer',
        metadata: {
          name,
          namespace: ops.namespace,
          labels: { 'dotmesh.io/dot-commit': `${plan.claim.namespace}.${dc.metadata.name}` },
        },
        spec: {
          remote: plan.pull.remote,
          direction: 'pull',
          dot: dotName,
          ...(plan.branch ? { branch: plan.branch } : {}),
          remoteDot: plan.pull.remoteDot,
          ...(plan.pull.remoteBranch ? { remoteBranch: plan.pull.remoteBranch } : {}),
        },
      });
      return { pulling: name };
    }
    if (t.status?.phase === 'Failed') {
      const error = redactError(t.status.error ?? { code: 'INTERNAL', message: t.status.message ?? 'the pull failed' }, '');
      throw new DotmeshError(
        error.code as ErrorCode,
        `pulling ${plan.pull.remoteDot} from DotRemote ${plan.pull.remote} (DotTransfer ${ops.namespace}/${name}): ${error.message}`,
        {
          hint: `${error.hint ? `${error.hint}; then ` : ''}make a new ${'DotCommit'} (a failed pull is not retried)`,
        },
      );
    }
    if (t.status?.phase !== 'Completed') return { pulling: name };
    const here = await commits();
    const commit = known ?? here.at(-1);
    if (!commit || !here.includes(commit)) {
      throw new DotmeshError(
        'COMMIT_NOT_FOUND',
        `commit ${commit ?? '(none)'} is not on branch ${plan.pull.remoteBranch || 'master'} of ${plan.pull.remoteDot} on DotRemote ${plan.pull.remote}`,
        { hint: 'name a commit of that branch in spec.commit (a new DotCommit)' },
      );
    }
    await this.#pin(plan, dc, { commit, dot: dotName, transfer: name });
    return { commit };
  }

  async #commits(plan: PopulationPlan, client: DotmeshClient): Promise<string[]> {
    return (await client.call('Commits', { Namespace: plan.dot.namespace, Name: plan.dot.name, Branch: plan.branch })).map(
      (c) => c.Id,
    );
  }

  /** Records the commit a DotCommit stands for in its status (every later PVC gets that one). */
  async #pin(plan: PopulationPlan, dc: DotCommitObject & { metadata: { name: string } }, status: DotCommitStatus): Promise<void> {
    const ctx = { ...this.#o, namespace: plan.claim.namespace };
    await writeStatus(ctx, DOT_COMMITS, dc.metadata.name, dc.status, status);
  }

  /**
   * The new branch `pvc-<uid>` from `commit` with the CSI driver's volume record on it (so the
   * driver's calls find it as a volume of its own); a retry finds both made. Its ids.
   */
  async #branch(plan: PopulationPlan, commit: string, client: DotmeshClient): Promise<{ dotId: string; branchId: string }> {
    const at = { Namespace: plan.dot.namespace, Name: plan.dot.name };
    await alreadySo(
      () =>
        client.call('Branch', {
          ...at,
          SourceBranch: plan.branch || 'master',
          NewBranchName: plan.newBranch,
          SourceCommitId: commit,
        }),
      'BRANCH_EXISTS',
    );
    await alreadySo(
      () =>
        client.call('Commit', {
          ...at,
          Branch: plan.newBranch,
          Message: 'Kubernetes volume',
          Metadata: volumeRecordMetadata(csiNameHash(plan.newBranch), 0, ''),
        }),
      'COMMIT_EXISTS',
    );
    const branchId = await client.call('Lookup', { ...at, Branch: plan.newBranch });
    const b = await client.call('BranchById', branchId);
    return { dotId: b.DotId, branchId };
  }

  async #createPv(pv: Parameters<CoreV1Api['createPersistentVolume']>[0]['body']): Promise<void> {
    try {
      await this.#o.core.createPersistentVolume({ body: pv });
    } catch (e) {
      if (!(e instanceof ApiException && e.code === 409)) throw e; // 409: made by an earlier step
    }
  }

  async #storageClass(name: string | undefined): Promise<V1StorageClass | undefined> {
    if (!name) return undefined;
    try {
      return await this.#o.storage.readStorageClass({ name });
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) return undefined;
      throw e;
    }
  }

  /**
   * The dotmesh user of the class's provisioner Secret (its `user` key; `admin` for the Secret
   * `dotmesh`'s admin key), read only in the operator's namespace; undefined: the class names none.
   */
  async #classUser(settings: ClassSettings): Promise<string | undefined> {
    const ref = settings.secrets.provisioner;
    if (!ref || settings.dotmeshNamespace) return undefined;
    if (ref.namespace !== this.#o.namespace) {
      throw new DotmeshError(
        'INVALID_ARGUMENT',
        `StorageClass ${settings.name}: the populator reads the class's user only from a Secret of namespace ${this.#o.namespace}, not ${ref.namespace}`,
        { hint: 'give the class a dotmeshNamespace parameter, or its Secret in the operator’s namespace' },
      );
    }
    let data: Record<string, string> | undefined;
    try {
      data = (await this.#o.core.readNamespacedSecret({ name: ref.name, namespace: ref.namespace })).data;
    } catch (e) {
      if (!(e instanceof ApiException && e.code === 404)) throw e;
      throw new DotmeshError(
        'INVALID_ARGUMENT',
        `StorageClass ${settings.name}: its Secret ${ref.namespace}/${ref.name} does not exist`,
        {
          hint: 'create it with keys user and apiKey',
        },
      );
    }
    const user = data?.user ? Buffer.from(data.user, 'base64').toString('utf8').trim() : '';
    return user || (data?.['dotmesh-api-key.txt'] ? 'admin' : undefined);
  }

  #in(pvc: V1PersistentVolumeClaim) {
    return { ...this.#o, namespace: pvc.metadata?.namespace ?? '' };
  }

  async #failed(pvc: V1PersistentVolumeClaim, e: DotmeshError): Promise<void> {
    const text = `${e.code}: ${e.message}${e.hint ? ` (${e.hint})` : ''}`;
    await this.#tell(pvc, 'Warning', 'PopulationFailed', text);
  }

  /** Records an Event on the PVC unless it is the one recorded last for it; logs it too. */
  async #tell(pvc: V1PersistentVolumeClaim, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const uid = pvc.metadata?.uid ?? '';
    const key = `${type} ${reason} ${message}`;
    if (this.#reported.get(uid) === key) return;
    this.#reported.set(uid, key);
    const fields = { pvc: `${pvc.metadata?.namespace}/${pvc.metadata?.name}`, reason, message };
    if (type === 'Warning') this.#o.log.warn('a PVC could not be populated', fields);
    else this.#o.log.info('populating a PVC', fields);
    await eventOn(this.#in(pvc), 'PersistentVolumeClaim', pvc.metadata ?? {}, type, reason, message).catch((err) =>
      this.#o.log.warn('could not record an Event', { error: String(err) }),
    );
  }
}

/** Runs `fn`, taking the dotmesh error codes in `done` as "already so" (a retried step). */
async function alreadySo(fn: () => Promise<unknown>, ...done: string[]): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (!(isDotmeshError(e) && done.includes(e.code))) throw e;
  }
}
