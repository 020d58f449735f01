import { type ChildProcess, spawn } from 'node:child_process';
import type { TestCluster } from '@dotmesh/testkit';

/**
 * A record of the pod changes the API server sends on a watch (`kubectl get pods -w
 * --output-watch-events -o json`), for tests that prove an order of events: each event carries
 * the object's resourceVersion, the etcd revision of the change, so the order of two deletions
 * is read from the store, not from when the test happened to look.
 */
export interface PodWatchEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  /** The etcd revision of this change. */
  readonly revision: bigint;
  readonly nodeName: string | undefined;
  readonly conditions: ReadonlyArray<{ readonly type: string; readonly status: string; readonly reason?: string }>;
}

export interface PodWatch {
  readonly events: PodWatchEvent[];
  stop(): Promise<void>;
}

interface RawEvent {
  type: PodWatchEvent['type'];
  object: {
    metadata: { namespace: string; name: string; uid: string; resourceVersion: string };
    spec?: { nodeName?: string };
    status?: { conditions?: { type: string; status: string; reason?: string }[] };
  };
}

/** Splits a stream of concatenated JSON values into complete ones (strings and escapes respected). */
export function jsonSplitter(onValue: (text: string) => void): (chunk: string) => void {
  let buffer = '';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  return (chunk) => {
    const from = buffer.length;
    buffer += chunk;
    for (let i = from; i < buffer.length; i++) {
      const c = buffer[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === '\\') escaped = true;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === '{') {
        if (depth++ === 0) start = i;
      } else if (c === '}' && --depth === 0) {
        onValue(buffer.slice(start, i + 1));
        buffer = buffer.slice(i + 1);
        i = -1;
      }
    }
    if (depth === 0) buffer = '';
  };
}

/** Watches every pod of `namespaces` from now on; `stop()` ends the watch (kill by PID). */
export async function watchPods(cluster: TestCluster, namespaces: readonly string[]): Promise<PodWatch> {
  const events: PodWatchEvent[] = [];
  const children: ChildProcess[] = [];
  const exits: Promise<void>[] = [];
  for (const ns of namespaces) {
    const child = spawn(
      cluster.tools.bin('kubectl'),
      [
        `--kubeconfig=${cluster.adminKubeconfig}`,
        'get',
        'pods',
        '-n',
        ns,
        '--watch',
        '--output-watch-events',
        '-o',
        'json',
        '--request-timeout=0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    exits.push(new Promise((resolve) => child.once('exit', () => resolve())));
    const feed = jsonSplitter((text) => {
      const e = JSON.parse(text) as RawEvent;
      events.push({
        type: e.type,
        namespace: e.object.metadata.namespace,
        name: e.object.metadata.name,
        uid: e.object.metadata.uid,
        revision: BigInt(e.object.metadata.resourceVersion),
        nodeName: e.object.spec?.nodeName,
        conditions: e.object.status?.conditions ?? [],
      });
    });
    child.stdout!.setEncoding('utf8').on('data', feed);
    child.stderr!.resume();
  }
  // The watch lists what exists first (ADDED events): it is running once those arrived.
  await new Promise((r) => setTimeout(r, 2000));
  return {
    events,
    async stop() {
      for (const c of children) if (c.exitCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGTERM');
      await Promise.all(exits);
    },
  };
}
