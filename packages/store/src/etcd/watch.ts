import type { Etcd3, Watcher as EtcdWatcher, IWatchResponse } from 'etcd3';
import type { WatchEvent, Watcher } from '../store.ts';
import type { KeyCodec } from './codec.ts';
import type { EtcdErrors } from './errors.ts';

export interface EtcdWatchParams {
  readonly client: Etcd3;
  readonly codec: KeyCodec;
  readonly errors: EtcdErrors;
  readonly prefix: string;
  /** Deliver events with revision > fromRevision; undefined = from now. */
  readonly fromRevision: number | undefined;
  readonly onEvents: (events: readonly WatchEvent[]) => void;
  readonly onError: ((error: Error) => void) | undefined;
  /** How long to wait for etcd to accept the watch. */
  readonly timeoutMs: number;
  /** Called once when the watch ends for any reason (the store forgets it). */
  readonly onEnd: (watch: EtcdWatch) => void;
  /**
   * Why etcd canceled the watch (`err`: the client's error), as the error `onError` gets:
   * COMPACTED when the history after `resumeAfter` is gone (etcd's usual reason, which it
   * does not spell out), else what the store makes of `err`.
   */
  readonly whyCanceled: (resumeAfter: number, err: Error) => Promise<Error>;
}

/**
 * One Store watch on an etcd watch stream. Each etcd watch response is one batch (etcd never
 * splits a revision across responses). The etcd3 client reconnects a broken stream by itself;
 * this class keeps the resume point exact: after the last revision actually delivered (the
 * client's own resume point, the response header's revision, can run ahead of a partly
 * delivered catch-up), so a watch survives an etcd restart without gaps or duplicates. It
 * ends with `onError` only when etcd cancels it (COMPACTED when its history was compacted
 * away) or the store closes.
 */
export class EtcdWatch implements Watcher {
  #params: EtcdWatchParams;
  #watcher: EtcdWatcher | undefined;
  /** Every event up to this revision was delivered (or precedes the watch). */
  #resumeAfter = 0;
  #ended = false;

  private constructor(params: EtcdWatchParams) {
    this.#params = params;
  }

  static async start(params: EtcdWatchParams): Promise<EtcdWatch> {
    const watch = new EtcdWatch(params);
    watch.#watcher = await watch.#open(params.fromRevision, true);
    return watch;
  }

  /** The client this watch's stream runs on. */
  get client(): Etcd3 {
    return this.#params.client;
  }

  /**
   * Moves the watch to another client (other endpoints of the same etcd cluster): a stream
   * there resumes after the last revision delivered, then the old stream is canceled. Events
   * both streams carry are delivered once (by revision). Rejects (the watch stays on its old
   * client) if the new stream is not accepted.
   */
  async moveTo(client: Etcd3, errors: EtcdErrors): Promise<void> {
    if (this.#ended || client === this.#params.client) return;
    const params = { ...this.#params, client, errors };
    const next = await this.#open(this.#resumeAfter, false, params);
    if (this.#ended) {
      await next.cancel().catch(() => undefined);
      return;
    }
    const old = this.#watcher;
    this.#params = params;
    this.#watcher = next;
    this.#pinResume(next);
    await old?.cancel().catch(() => undefined);
  }

  /**
   * A stream of this watch from `fromRevision` (undefined: from now), resolved once etcd
   * accepted it. `initial`: the watch's first stream, which sets the resume point.
   */
  async #open(fromRevision: number | undefined, initial: boolean, params = this.#params): Promise<EtcdWatcher> {
    const { client, codec, errors, timeoutMs } = params;
    const range = codec.range(params.prefix);
    let builder = client.watch().inRange({ start: range.key, end: range.range_end });
    if (fromRevision !== undefined) builder = builder.startRevision(String(fromRevision + 1));
    const watcher = builder.watcher();
    let created = false;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (created) return;
        reject(errors.unavailable(`the watch was not accepted within ${timeoutMs} ms`));
      }, timeoutMs);
      watcher.on('connected', (res: IWatchResponse) => {
        if (!created) {
          created = true;
          clearTimeout(timer);
          if (initial) this.#resumeAfter = fromRevision ?? Number(res.header.revision);
          resolve();
        }
        this.#pinResume(watcher);
      });
      watcher.on('data', (res: IWatchResponse) => this.#receive(res, watcher));
      watcher.on('error', (err: Error) => {
        if (!created) {
          created = true;
          clearTimeout(timer);
          reject(errors.map(err));
          return;
        }
        // A stream this watch moved away from ends as it likes.
        if (watcher !== this.#watcher) return;
        void this.#params.whyCanceled(this.#resumeAfter, err).then((why) => this.fail(why));
      });
    }).catch(async (e: unknown) => {
      if (initial) this.#ended = true;
      await watcher.cancel().catch(() => undefined);
      throw e;
    });
    return watcher;
  }

  #receive(res: IWatchResponse, from: EtcdWatcher): void {
    if (this.#ended) return;
    const events: WatchEvent[] = [];
    for (const ev of res.events) {
      const revision = Number(ev.kv.mod_revision);
      if (revision <= this.#resumeAfter) continue;
      const key = this.#params.codec.decode(ev.kv.key);
      events.push(
        ev.type === 'Delete'
          ? Object.freeze({ type: 'delete', key, revision })
          : Object.freeze({ type: 'put', key, value: ev.kv.value.toString('utf8'), revision }),
      );
    }
    if (events.length > 0) this.#resumeAfter = events[events.length - 1]!.revision;
    else if (res.events.length === 0) this.#resumeAfter = Math.max(this.#resumeAfter, Number(res.header.revision));
    this.#pinResume(from);
    if (events.length > 0) this.#params.onEvents(events);
  }

  /** Overrides the client's resume point of `watcher` (set from the header) with the exact one. */
  #pinResume(watcher: EtcdWatcher): void {
    watcher.request.start_revision = String(this.#resumeAfter + 1);
  }

  /** Ends the watch with `onError` (at most once); no events follow. */
  fail(error: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#params.onEnd(this);
    void this.#watcher?.cancel().catch(() => undefined);
    try {
      this.#params.onError?.(error);
    } catch {
      // A throwing onError must not break the store.
    }
  }

  async cancel(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    this.#params.onEnd(this);
    await this.#watcher?.cancel().catch(() => undefined);
  }
}
