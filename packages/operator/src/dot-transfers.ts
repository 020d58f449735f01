import { isDeepStrictEqual } from 'node:util';
import { isDotmeshError } from '@dotmesh/core';
import type { DotmeshClient } from '@dotmesh/rpc/client';
import { ApiException, type CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import { type CustomObjects, getObject, listObjects, writeStatus } from './custom-objects.ts';
import {
  API_VERSION,
  DOT_REMOTES,
  DOT_TRANSFERS,
  type DotRemoteObject,
  type DotTransferObject,
  type DotTransferStatus,
} from './dot-resources.ts';
import { apiKeyFrom, errorStatus, type TransferPlan, transferPlan } from './dot-transfer-spec.ts';
import { failedStatus, isFinished, redactError, statusFromPoll } from './dot-transfer-status.ts';
import { eventOn } from './events.ts';
import type { Logger } from './logger.ts';

/**
 * Runs the DotTransfers of the operator's namespace, each once, like a Job. A new one is checked
 * (dot-transfer-spec.ts: its spec, its DotRemote, the Secret with the API key) and handed to a
 * serving server of this cluster (`Transfer`, as admin: the server dials the remote); its status
 * then follows the server's record (`GetTransfer`, dot-transfer-status.ts) until Completed or
 * Failed. A check that fails ends it Failed at once, nothing transferred. A `Transfer` call that
 * fails with UNAVAILABLE (the remote or a server did not answer) is tried again, START_ATTEMPTS
 * times in all, the failures counted in `retries`; once started, the server retries on its own.
 * The API key goes only into the `Transfer` call; statuses, Events and logs carry no credential
 * (messages are redacted of the key too). Events: Normal Started and Completed, Warning Failed.
 */
export interface TransferContext extends CustomObjects {
  readonly core: CoreV1Api;
  readonly log: Logger;
  readonly instance: string;
  /** A client (as admin) of the server on a serving node, that node's name; undefined: none serves. */
  readonly server: (preferNode?: string) => Promise<{ readonly client: DotmeshClient; readonly node: string } | undefined>;
  readonly now?: () => Date;
}

export const START_ATTEMPTS = 3;
const START_BACKOFF_MS = 2_000;
/** Polls in a row that find no record of a started transfer before it is marked Failed. */
const LOST_RECORD_POLLS = 30;

/** Per transfer (uid): the API key while it runs (to redact), failed polls, when to start again. */
interface Running {
  apiKey: string;
  missingPolls: number;
  notBefore: number;
}

export class DotTransfers {
  readonly #running = new Map<string, Running>();
  readonly #o: TransferContext;

  constructor(o: TransferContext) {
    this.#o = o;
  }

  /** One pass over the DotTransfers; returns whether one is still running (poll again soon) and whether one just finished. */
  async step(): Promise<{ active: boolean; finished: boolean }> {
    const all = await listObjects<DotTransferObject & { metadata: { name: string; uid: string } }>(this.#o, DOT_TRANSFERS);
    let active = false;
    let finished = false;
    const seen = new Set<string>();
    for (const t of all) {
      seen.add(t.metadata.uid);
      if (isFinished(t.status)) continue;
      const status = await this.#advance(t).catch((e) => {
        this.#o.log.warn('could not advance a DotTransfer; retrying', {
          dotTransfer: t.metadata.name,
          error: String((e as Error)?.message ?? e),
        });
        return t.status;
      });
      if (isFinished(status)) finished = true;
      else active = true;
    }
    for (const uid of this.#running.keys()) if (!seen.has(uid)) this.#running.delete(uid);
    return { active, finished };
  }

  async #advance(t: DotTransferObject & { metadata: { name: string; uid: string } }): Promise<DotTransferStatus | undefined> {
    const now = this.#o.now?.() ?? new Date();
    const run = this.#running.get(t.metadata.uid);
    if (run && run.notBefore > now.getTime()) return t.status;
    const status = t.status?.transferId ? await this.#poll(t, run, now) : await this.#start(t, now);
    if (status === undefined || isDeepStrictEqual(status, t.status)) return t.status;
    await writeStatus(this.#o, DOT_TRANSFERS, t.metadata.name, t.status, status);
    await this.#report(t, t.status, status);
    if (isFinished(status)) this.#running.delete(t.metadata.uid);
    return status;
  }

  /** Checks the transfer and hands it to a server; the status to write (undefined: nothing yet). */
  async #start(t: DotTransferObject & { metadata: { uid: string } }, now: Date): Promise<DotTransferStatus | undefined> {
    const startTime = t.status?.startTime ?? now.toISOString();
    let plan: TransferPlan;
    let apiKey: string;
    try {
      const remoteName = typeof t.spec?.remote === 'string' && /^[a-z0-9][-a-z0-9.]*$/.test(t.spec.remote) ? t.spec.remote : '';
      const remote =
        remoteName === '' ? undefined : await getObject<DotRemoteObject & { metadata: object }>(this.#o, DOT_REMOTES, remoteName);
      plan = transferPlan(t, remote);
      apiKey = apiKeyFrom(await this.#secret(plan.secret.name), plan, this.#o.namespace);
    } catch (e) {
      if (!isDotmeshError(e)) throw e; // an API call failed: try again at the next step
      return failedStatus(errorStatus(e), '', now, startTime);
    }
    const server = await this.#o.server();
    if (!server) return { phase: 'Pending', startTime, message: 'waiting for a serving Dotmesh server' };
    const run = this.#running.get(t.metadata.uid) ?? { apiKey, missingPolls: 0, notBefore: 0 };
    run.apiKey = apiKey;
    this.#running.set(t.metadata.uid, run);
    try {
      const transferId = await server.client.call('Transfer', { ...plan.request, ApiKey: apiKey });
      return {
        phase: 'Running',
        transferId,
        node: server.node,
        startTime,
        state: 'starting',
        ...(t.status?.retries ? { retries: t.status.retries } : {}),
      };
    } catch (e) {
      const error = redactError(errorStatus(e), apiKey);
      const retries = (t.status?.retries ?? 0) + 1;
      if (error.code === 'UNAVAILABLE' && retries < START_ATTEMPTS) {
        run.notBefore = now.getTime() + START_BACKOFF_MS * retries;
        return { phase: 'Pending', startTime, retries, message: `attempt ${retries} failed; trying again`, error };
      }
      return { ...failedStatus(error, apiKey, now, startTime), retries };
    }
  }

  /** The server's record of a started transfer, as a status. */
  async #poll(
    t: DotTransferObject & { metadata: { uid: string } },
    run: Running | undefined,
    now: Date,
  ): Promise<DotTransferStatus | undefined> {
    const status = t.status!;
    const r = run ?? { apiKey: await this.#apiKeyForRedaction(t), missingPolls: 0, notBefore: 0 };
    this.#running.set(t.metadata.uid, r);
    const server = await this.#o.server(status.node);
    if (!server) return undefined;
    try {
      const poll = await server.client.call('GetTransfer', status.transferId!);
      r.missingPolls = 0;
      const next = statusFromPoll(
        poll,
        {
          transferId: status.transferId!,
          node: status.node ?? server.node,
          ...(status.startTime ? { startTime: status.startTime } : {}),
        },
        r.apiKey,
        now,
      );
      // Failed attempts so far: the failed starts, or the most the server has reported.
      return { ...next, retries: Math.max(status.retries ?? 0, next.retries ?? 0) };
    } catch (e) {
      if (!(isDotmeshError(e) && e.code === 'DOT_NOT_FOUND')) return undefined; // the server may be back soon
      r.missingPolls++;
      if (r.missingPolls < LOST_RECORD_POLLS) return undefined;
      return failedStatus(
        {
          code: 'INTERNAL',
          message: `the server has no record of transfer ${status.transferId} any more`,
          hint: 'its server restarted while it ran: make a new DotTransfer (it resumes after the commits that arrived)',
        },
        r.apiKey,
        now,
        status.startTime,
      );
    }
  }

  async #secret(name: string): Promise<V1Secret | undefined> {
    try {
      return await this.#o.core.readNamespacedSecret({ name, namespace: this.#o.namespace });
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) return undefined;
      throw e;
    }
  }

  /** After an operator restart: the key of a running transfer, only to redact its messages ("" if unreadable). */
  async #apiKeyForRedaction(t: DotTransferObject): Promise<string> {
    try {
      const remote = await getObject<DotRemoteObject & { metadata: object }>(this.#o, DOT_REMOTES, String(t.spec?.remote));
      const plan = transferPlan(t, remote);
      return apiKeyFrom(await this.#secret(plan.secret.name), plan, this.#o.namespace);
    } catch {
      return '';
    }
  }

  async #report(t: DotTransferObject, before: DotTransferStatus | undefined, after: DotTransferStatus): Promise<void> {
    const o = this.#o;
    const name = t.metadata.name!;
    let event: ['Normal' | 'Warning', string, string] | undefined;
    if (after.phase === 'Running' && before?.phase !== 'Running')
      event = ['Normal', 'Started', `transfer ${after.transferId} started on ${after.node}`];
    else if (after.phase === 'Completed') event = ['Normal', 'Completed', `transferred ${after.progress ?? ''}`];
    else if (after.phase === 'Failed')
      event = ['Warning', 'Failed', `${after.error?.code ?? 'INTERNAL'}: ${after.error?.message ?? after.message ?? ''}`];
    if (!event) return;
    const fields = {
      dotTransfer: name,
      phase: after.phase,
      ...(after.error ? { code: after.error.code, error: after.error.message } : {}),
    };
    if (after.phase === 'Failed') o.log.warn('a DotTransfer failed', fields);
    else o.log.info(`a DotTransfer ${after.phase === 'Completed' ? 'completed' : 'started'}`, fields);
    await eventOn(o, 'DotTransfer', t.metadata, event[0], event[1], event[2], API_VERSION).catch((e) =>
      o.log.warn('could not record an Event', { error: String(e) }),
    );
  }
}
