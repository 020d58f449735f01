import { execFile } from 'node:child_process';
import type { CommandResult } from '../process.ts';

export interface KubectlOptions {
  /** Written to kubectl's stdin (`apply -f -`). */
  readonly input?: string;
  /** Default 120 s. */
  readonly timeoutMs?: number;
}

export type Kubectl = (args: readonly string[], opts?: KubectlOptions) => Promise<CommandResult>;

/** Runs the tools' kubectl with `kubeconfig`; rejects with its stderr on a non-zero exit. */
export function kubectlRunner(bin: string, kubeconfig: string): Kubectl {
  return (args, opts = {}) =>
    new Promise((resolve, reject) => {
      const child = execFile(
        bin,
        [`--kubeconfig=${kubeconfig}`, ...args],
        { encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) =>
          err
            ? reject(new Error(`kubectl ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }))
            : resolve({ stdout, stderr }),
      );
      child.stdin?.end(opts.input ?? '');
    });
}

interface NodeList {
  readonly items: {
    readonly metadata: { readonly name: string };
    readonly status?: {
      readonly conditions?: { readonly type: string; readonly status: string }[];
      readonly addresses?: { readonly type: string; readonly address: string }[];
    };
  }[];
}

/** Node name → { ready, internalIP } from `kubectl get nodes -o json`. */
export async function nodeStatus(kubectl: Kubectl): Promise<Map<string, { ready: boolean; internalIP: string | undefined }>> {
  const { stdout } = await kubectl(['get', 'nodes', '-o', 'json']);
  const list = JSON.parse(stdout) as NodeList;
  return new Map(
    list.items.map((n) => [
      n.metadata.name,
      {
        ready: n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
        internalIP: n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address,
      },
    ]),
  );
}
