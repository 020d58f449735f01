import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import { DotmeshClient } from '@dotmesh/rpc/client';
import { DEFAULT_RPC_PORT } from '@dotmesh/rpc/server-defaults';

/**
 * `dotmesh-server pre-stop`: the server pod's preStop hook (the operator's pod spec runs it).
 * When the pod is being *disrupted* (evicted: `kubectl drain`, a node's shutdown; the pod has a
 * `DisruptionTarget` condition), the node's pods are going too: it waits until no use of this
 * node's dots is left (NodeUses: the FlexVolume and CSI mounts and attachments), so that the
 * kubelet's unmounts of those pods' volumes still reach this server, which then stops last. A
 * pod that is merely deleted (the operator replacing it with a new image, a user's delete)
 * stops at once: the pods using its dots stay, and the new server pod takes them up.
 * The wait is bounded by `--timeout-seconds` (less than the pod's grace period, so the server
 * still has time to stop cleanly), and ends when the server refuses connections (it stopped:
 * the CSI node container's hook, which outlives the server container's). It reads its own pod
 * with the pod's service-account token; if it cannot tell, it does not wait (a wait is a
 * courtesy to the unmounts, never a safety need: the dots stay mounted on the node whatever the
 * server does).
 */
export const PRESTOP_USAGE = `usage: dotmesh-server pre-stop --admin-api-key-file FILE [--timeout-seconds N]
  (in the server pod: POD_NAME, POD_NAMESPACE, DOTMESH_NODE_IP and the service account token)`;

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface PreStopOptions {
  readonly adminApiKeyFile: string;
  readonly timeoutSeconds: number;
  readonly podName: string;
  readonly podNamespace: string;
  /** This node's server address (the API listens there). */
  readonly nodeAddress: string;
  /** The in-cluster API server (`KUBERNETES_SERVICE_HOST`, `_PORT`). */
  readonly apiHost: string;
  readonly apiPort: string;
  readonly serviceAccountDir: string;
  readonly pollMs?: number;
  readonly say: (line: string) => void;
}

export function parsePreStop(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): PreStopOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      'admin-api-key-file': { type: 'string' },
      'timeout-seconds': { type: 'string', default: '100' },
    },
    strict: true,
  });
  const timeoutSeconds = Number(values['timeout-seconds']);
  const need = { POD_NAME: env.POD_NAME, POD_NAMESPACE: env.POD_NAMESPACE, DOTMESH_NODE_IP: env.DOTMESH_NODE_IP };
  const missing = Object.entries(need).filter(([, v]) => !v);
  if (!values['admin-api-key-file'] || !Number.isInteger(timeoutSeconds) || timeoutSeconds < 0 || missing.length > 0) {
    throw new DotmeshError(
      'INVALID_ARGUMENT',
      `pre-stop needs --admin-api-key-file, a whole --timeout-seconds and the environment ${missing.map(([k]) => k).join(', ') || '(set)'}`,
      { hint: PRESTOP_USAGE },
    );
  }
  return {
    adminApiKeyFile: values['admin-api-key-file'],
    timeoutSeconds,
    podName: need.POD_NAME!,
    podNamespace: need.POD_NAMESPACE!,
    nodeAddress: need.DOTMESH_NODE_IP!,
    apiHost: env.KUBERNETES_SERVICE_HOST ?? '',
    apiPort: env.KUBERNETES_SERVICE_PORT ?? '443',
    serviceAccountDir: SERVICE_ACCOUNT_DIR,
    say: (line) => process.stdout.write(`${line}\n`),
  };
}

interface PodStatus {
  readonly status?: {
    readonly conditions?: ReadonlyArray<{ readonly type?: string; readonly status?: string; readonly reason?: string }>;
  };
}

/** The pod's DisruptionTarget condition's reason when it is being disrupted (evicted), else undefined. */
export function disruptionOf(pod: PodStatus): string | undefined {
  const c = pod.status?.conditions?.find((x) => x.type === 'DisruptionTarget' && x.status === 'True');
  return c ? c.reason || 'DisruptionTarget' : undefined;
}

async function readOwnPod(o: PreStopOptions): Promise<PodStatus> {
  if (!o.apiHost) throw new Error('KUBERNETES_SERVICE_HOST is not set');
  const [token, ca] = await Promise.all([
    readFile(join(o.serviceAccountDir, 'token'), 'utf8'),
    readFile(join(o.serviceAccountDir, 'ca.crt'), 'utf8'),
  ]);
  const host = o.apiHost.includes(':') ? `[${o.apiHost}]` : o.apiHost;
  const path = `/api/v1/namespaces/${encodeURIComponent(o.podNamespace)}/pods/${encodeURIComponent(o.podName)}`;
  return new Promise((resolve, reject) => {
    const req = request(
      `https://${host}:${o.apiPort}${path}`,
      { ca, headers: { Authorization: `Bearer ${token.trim()}`, Accept: 'application/json' }, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) reject(new Error(`GET ${path}: HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
          else {
            try {
              resolve(JSON.parse(body) as PodStatus);
            } catch {
              reject(new Error(`GET ${path}: not JSON: ${body.slice(0, 200)}`));
            }
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer in 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Runs the hook; always resolves (a failing hook only delays the pod's end). */
export async function preStop(o: PreStopOptions): Promise<void> {
  let reason: string | undefined;
  try {
    reason = disruptionOf(await readOwnPod(o));
  } catch (e) {
    o.say(`pre-stop: cannot read pod ${o.podNamespace}/${o.podName} (${(e as Error).message}): stopping without waiting`);
    return;
  }
  if (!reason) {
    o.say('pre-stop: the pod is deleted, not evicted: stopping at once (the dots stay mounted for the next server pod)');
    return;
  }
  const apiKey = (await readFile(o.adminApiKeyFile, 'utf8')).trim();
  const client = new DotmeshClient({
    url: `http://${o.nodeAddress}:${DEFAULT_RPC_PORT}/rpc`,
    user: 'admin',
    apiKey,
    timeoutMs: 10_000,
  });
  o.say(`pre-stop: evicted (${reason}): waiting up to ${o.timeoutSeconds} s for the uses of this node's dots to end`);
  await waitForNoUse(client, o);
}

/** Whether `e` says that nothing listens at the server's address (it stopped, or never started). */
function refused(e: Error): boolean {
  return isDotmeshError(e) && e.code === 'UNAVAILABLE' && (e.cause as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED';
}

/**
 * Asks the node's server for the uses of its dots every `pollMs` until there is none, the
 * server refuses connections (it stopped: no unmount can reach it any more, e.g. the CSI node
 * container's hook after the server container's), or `timeoutSeconds` passed. Another error
 * (a timeout, a busy server) counts as uses left.
 */
export async function waitForNoUse(
  client: { call(method: 'NodeUses', params: Record<string, never>): Promise<{ Uses: readonly unknown[] }> },
  o: Pick<PreStopOptions, 'timeoutSeconds' | 'pollMs' | 'say'>,
): Promise<void> {
  const deadline = Date.now() + o.timeoutSeconds * 1000;
  let last = '';
  for (;;) {
    const uses = await client.call('NodeUses', {}).then(
      (r) => r.Uses,
      (e: Error) => e,
    );
    if (!(uses instanceof Error) && uses.length === 0) {
      o.say('pre-stop: no use left: stopping');
      return;
    }
    if (uses instanceof Error && refused(uses)) {
      o.say(`pre-stop: the server refuses connections (it stopped): stopping (${uses.message})`);
      return;
    }
    const now = uses instanceof Error ? `cannot list the uses: ${uses.message}` : `${uses.length} use(s) left`;
    if (now !== last) o.say(`pre-stop: ${now}`);
    last = now;
    if (Date.now() >= deadline) {
      o.say(`pre-stop: ${o.timeoutSeconds} s passed: stopping anyway (${now})`);
      return;
    }
    await new Promise((r) => setTimeout(r, o.pollMs ?? 1000));
  }
}
