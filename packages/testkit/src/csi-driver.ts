import { access, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cleanup } from './cleanup.ts';
import { spawnTracked, type TrackedProcess } from './process.ts';
import type { ServerProcess } from './server-process.ts';

/** The CSI driver bundle `npm run build` makes: what a deployment runs. */
export const CSI_DRIVER_BUNDLE = resolve(import.meta.dirname, '../../../dist/dotmesh-csi.mjs');

export interface CsiDriverProcess {
  readonly socket: string;
  readonly process: TrackedProcess;
  /** Starts another driver process on the same socket (after a kill), with these failpoints armed. */
  restart(failpoints?: readonly string[]): Promise<CsiDriverProcess>;
}

/**
 * Runs `dotmesh-csi` (the built bundle: `npm run build` first) against `server`, acting as the
 * server's admin for the calls without secrets, with its socket in `dir` (or at `socketPath`);
 * resolves once it listens. `netnsPath`: run it in that network namespace (a Kubernetes node's,
 * beside that node's server); `extraArgs`: more flags (the kubelet registration).
 */
export async function startCsiDriver(o: {
  readonly cleanup: Cleanup;
  readonly dir: string;
  readonly server: ServerProcess;
  readonly csiProto: string;
  /** Driver failpoints to arm (it SIGKILLs itself there). */
  readonly failpoints?: readonly string[];
  readonly socketPath?: string;
  readonly netnsPath?: string;
  readonly extraArgs?: readonly string[];
}): Promise<CsiDriverProcess> {
  const socket = o.socketPath ?? join(o.dir, 'csi.sock');
  const credentials = join(o.dir, 'driver-credentials.json');
  await writeFile(credentials, JSON.stringify({ user: 'admin', apiKey: o.server.apiKey }), { mode: 0o600 });
  await access(CSI_DRIVER_BUNDLE).catch(() => {
    throw new Error(`${CSI_DRIVER_BUNDLE} is missing: run npm run build first`);
  });
  const launch = async (failpoints: readonly string[] = o.failpoints ?? []): Promise<CsiDriverProcess> => {
    const argv = [
      process.execPath,
      CSI_DRIVER_BUNDLE,
      `--endpoint=unix://${socket}`,
      `--server-url=${o.server.url}`,
      `--credentials-file=${credentials}`,
      `--csi-proto=${o.csiProto}`,
      ...failpoints.map((f) => `--failpoint=${f}`),
      ...(o.extraArgs ?? []),
    ];
    const full = o.netnsPath ? ['nsenter', `--net=${o.netnsPath}`, '--', ...argv] : argv;
    const p = spawnTracked(full[0]!, full.slice(1), { cleanup: o.cleanup });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (
        await access(socket).then(
          () => p.output().includes('"listening"'),
          () => false,
        )
      )
        break;
      if (p.child.exitCode !== null) throw new Error(`dotmesh-csi exited:\n${p.output()}`);
      if (Date.now() > deadline) throw new Error(`dotmesh-csi did not listen within 30 s:\n${p.output()}`);
      await sleep(100);
    }
    return { socket, process: p, restart: (again = []) => launch(again) };
  };
  return launch();
}
