#!/usr/bin/env node
/** The `test-cloud-csi` executable: the only place that reads process.argv and signals. */
import { parseArgs } from 'node:util';
import { startCloudDriver } from './driver.ts';

const USAGE = `Usage: test-cloud-csi --endpoint unix:///PATH/csi.sock --root DIR --zones A,B --csi-proto FILE [options]

A test-only CSI driver (cloud.test.dotmesh.io) standing in for a cloud's block disks: disks are
sparse files under DIR, a folder every node shares. Never shipped.

  --endpoint URL            unix:///path/csi.sock to serve CSI on
  --root DIR                the shared folder of the disks and their records
  --zones A,B               the cloud's zones
  --node NAME --zone Z      also serve the Node service as node NAME in zone Z
  --csi-proto FILE          csi.proto of the CSI spec v1.13.0
  --registration-dir DIR    register with the kubelet: its plugins_registry directory
  --registration-proto FILE the kubelet's pluginregistration api.proto`;

const { values } = parseArgs({
  options: {
    endpoint: { type: 'string' },
    root: { type: 'string' },
    zones: { type: 'string' },
    node: { type: 'string' },
    zone: { type: 'string' },
    'csi-proto': { type: 'string' },
    'registration-dir': { type: 'string' },
    'registration-proto': { type: 'string' },
  },
  strict: true,
});
const endpoint = values.endpoint?.replace(/^unix:\/\//, '');
if (
  !endpoint?.startsWith('/') ||
  !values.root ||
  !values.zones ||
  !values['csi-proto'] ||
  (values.node === undefined) !== (values.zone === undefined)
) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}
const log = (entry: Record<string, unknown>) =>
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
const driver = await startCloudDriver({
  socketPath: endpoint,
  root: values.root,
  zones: values.zones.split(','),
  ...(values.node === undefined ? {} : { node: values.node, zone: values.zone }),
  csiProto: values['csi-proto'],
  ...(values['registration-dir']
    ? { registrationDir: values['registration-dir'], registrationProto: values['registration-proto'] }
    : {}),
  log,
});
await new Promise<void>((resolve) => {
  process.once('SIGTERM', () => resolve());
  process.once('SIGINT', () => resolve());
});
await driver.close();
process.exit(0);
