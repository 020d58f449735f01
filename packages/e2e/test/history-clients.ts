import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DotmeshNode } from '@dotmesh/testkit';

/**
 * The clients of the history checker (cluster-history.test.ts): each writes new content to the
 * file `data` of its own dot through the dot's master node (the host path Procure returns) and
 * commits it, again and again until stopped. Only a Commit that returned a commit id is
 * *acknowledged*; it is recorded with the SHA-256 of what was written before it. Every other
 * outcome (the server killed, the store without quorum, NOT_REPLICATED) is an attempt that
 * promised nothing, counted by its error code.
 */
export const DATA_FILE = 'data';

export interface Acknowledged {
  readonly client: number;
  readonly dot: string;
  readonly commitId: string;
  readonly sha256: string;
  /** Milliseconds since the run started. */
  readonly at: number;
}

export interface ClientStats {
  attempts: number;
  readonly failures: Map<string, number>;
}

export interface HistoryClient {
  readonly dot: string;
  readonly stats: ClientStats;
  /** Resolves once the loop has stopped (after the call under way). */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function startClient(o: {
  readonly index: number;
  readonly dot: string;
  /** The dot's master (its writes go there). */
  readonly node: DotmeshNode;
  readonly started: number;
  readonly history: Acknowledged[];
}): HistoryClient {
  const stats: ClientStats = { attempts: 0, failures: new Map() };
  let stopping = false;
  const loop = (async () => {
    for (let seq = 0; !stopping; seq++) {
      stats.attempts++;
      const content = `client ${o.index} write ${seq} ${randomBytes(16).toString('hex')}\n`;
      try {
        const path = await o.node.admin.call('Procure', { Namespace: 'admin', Name: o.dot, Subdot: '' });
        await writeFile(join(path, DATA_FILE), content);
        const commitId = await o.node.admin.call('Commit', {
          Namespace: 'admin',
          Name: o.dot,
          Branch: '',
          Message: `client ${o.index} write ${seq}`,
          Metadata: {},
        });
        o.history.push({
          client: o.index,
          dot: o.dot,
          commitId,
          sha256: createHash('sha256').update(content).digest('hex'),
          at: Date.now() - o.started,
        });
      } catch (e) {
        const code = (e as { code?: string }).code ?? (e as Error).name;
        stats.failures.set(code, (stats.failures.get(code) ?? 0) + 1);
        await sleep(300);
      }
    }
  })();
  return {
    dot: o.dot,
    stats,
    async stop() {
      stopping = true;
      await loop;
    },
  };
}
