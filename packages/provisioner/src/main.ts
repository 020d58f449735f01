import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { PROVISIONER_NAME } from './decide.ts';
import { kubeApi, runInformers } from './kube.ts';
import { Provisioner } from './provisioner.ts';

const USAGE = `usage: dotmesh-provisioner [--kubeconfig FILE] [--name NAME] [--resync-seconds N]

Provisions PersistentVolumes with the FlexVolume source dotmesh.io/dm for the PVCs of
StorageClasses whose provisioner is NAME (default ${PROVISIONER_NAME}).
Without --kubeconfig it uses the pod's service account (in-cluster).`;

/**
 * Runs the provisioner until `stopped` resolves. Logs JSON lines to `log`. Returns the exit
 * status (2: bad arguments).
 */
export async function main(
  argv: readonly string[],
  io: { log: (line: string) => void; stopped: Promise<void> },
): Promise<number> {
  let values: {
    kubeconfig?: string | undefined;
    name?: string | undefined;
    'resync-seconds'?: string | undefined;
    help?: boolean | undefined;
  };
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        kubeconfig: { type: 'string' },
        name: { type: 'string' },
        'resync-seconds': { type: 'string' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (e) {
    io.log(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.log(USAGE);
    return 0;
  }
  const resyncSeconds = Number(values['resync-seconds'] ?? '30');
  if (!Number.isInteger(resyncSeconds) || resyncSeconds < 1 || resyncSeconds > 3600) {
    io.log(`--resync-seconds must be 1 to 3600\n${USAGE}`);
    return 2;
  }
  const kc = new KubeConfig();
  if (values.kubeconfig) kc.loadFromFile(values.kubeconfig);
  else kc.loadFromCluster();
  const log = (fields: Record<string, unknown>, msg: string) =>
    io.log(JSON.stringify({ time: new Date().toISOString(), msg, ...fields }));
  const name = values.name ?? PROVISIONER_NAME;
  const provisioner = new Provisioner({ api: kubeApi(kc, hostname()), log, name });
  const stop = await runInformers(kc, provisioner, { resyncMs: resyncSeconds * 1000, log });
  log({ name }, 'dotmesh dynamic provisioner running');
  await io.stopped;
  stop();
  return 0;
}
