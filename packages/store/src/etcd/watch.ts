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
  readonly #params: EtcdWatchParams;
  #watcher: EtcdWatcher | undefined;
  /** Every event up to this revision was delivered (or precedes the watch). */
  #resumeAfter = 0;
  #ended = false;

  private constructor(params: EtcdWatchParams) {
    this.#params = params;
  }

  static async start(params: EtcdWatchParams): Promise<EtcdWatch> {
    const watch = new EtcdWatch(params);
    await watch.#create();
    return watch;
  }

  async #create(): Promise<void> {
    const { client, codec, fromRevision, errors, timeoutMs } = this.#params;
    const range = codec.range(this.#params.prefix);
    let builder = client.watch().inRange({ start: range.key, end: range.range_end });
    if (fromRevision !== undefined) builder = builder.startRevision(String(fromRevision + 1));
    const watcher = builder.watcher();
    this.#watcher = watcher;
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
          this.#resumeAfter = fromRevision ?? Number(res.header.revision);
          resolve();
        }
        this.#pinResume();
      });
      watcher.on('data', (res: IWatchResponse) => this.#receive(res));
      watcher.on('error', (err: Error) => {
        if (!created) {
          created = true;
          clearTimeout(timer);
          reject(errors.map(err));
          return;
        }
        void this.#params.whyCanceled(this.#resumeAfter, err).then((why) => this.fail(why));
      });
    }).catch(async (e: unknown) => {
      this.#ended = true;
      await watcher.cancel().catch(() => undefined);
      throw e;
    });
  }

  #receive(res: IWatchResponse): void {
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
    this.#pinResume();
    if (events.length > 0) this.#params.onEvents(events);
  }

  /** Overrides the client's resume point (set from the header) with the exact one. */
  #pinResume(): void {
    if (this.#watcher) this.#watcher.request.start_revision = String(this.#resumeAfter + 1);
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
