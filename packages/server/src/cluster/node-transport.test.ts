import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { createExec } from '@dotmesh/storage';
import { Cleanup, makeTempDir } from '@dotmesh/testkit';
import { ensureClusterPki, makeKeyAndCsr, signCsr } from '../tls/pki.ts';
import { createNodeServer, NodeClient, type NodeTls } from './node-transport.ts';
import type { ClusterView } from './view.ts';

/** Two nodes' credentials of one cluster CA: `a` calls, `b` answers. */
async function twoNodes(cleanup: Cleanup): Promise<{ a: NodeTls; b: NodeTls }> {
  const exec = createExec();
  const dir = await makeTempDir('node-transport', cleanup);
  const pki = await ensureClusterPki({ stateDir: dir, exec, subjectAltNames: ['127.0.0.1'] });
  const ca = await readFile(pki.caCert);
  const issue = async (cn: string): Promise<NodeTls> => {
    const keyFile = join(dir, `${cn}.key`);
    const csrPem = await makeKeyAndCsr(exec, keyFile, cn);
    const cert = await signCsr(exec, dir, { csrPem, cn, names: ['127.0.0.1'], usage: 'serverAuth,clientAuth' });
    return { ca, cert: Buffer.from(cert), key: await readFile(keyFile) };
  };
  return { a: await issue('node-a'), b: await issue('node-b') };
}

/** The one part of the cluster view NodeClient reads: node-b's advertised address and port. */
function viewWithNodeB(port: number): ClusterView {
  return {
    node: (id: string) => (id === 'node-b' ? { addresses: ['127.0.0.1'], clusterPort: port } : undefined),
  } as unknown as ClusterView;
}

describe('NodeClient: calls to another node', () => {
  test('a node whose address takes connections but never completes TLS is UNAVAILABLE after the connect timeout, not the idle one', async () => {
    const cleanup = new Cleanup();
    try {
      const { a } = await twoNodes(cleanup);
      const held: Socket[] = [];
      const silent = createTcpServer((s) => held.push(s)); // accepts, never answers the ClientHello
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      cleanup.add(() => {
        for (const s of held) s.destroy();
        return new Promise<void>((resolve) => silent.close(() => resolve()));
      });
      const port = (silent.address() as AddressInfo).port;
      const client = new NodeClient(viewWithNodeB(port), a, { idleMs: 60_000, connectMs: 300 });
      const started = performance.now();
      const error = await client.post('node-b', '/x', '{}').then(
        () => assert.fail('a call to a node that never finishes its handshake must fail'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof DotmeshError);
      assert.equal(error.code, 'UNAVAILABLE');
      assert.match(error.message, /cannot reach node node-b: no TLS connection to 127\.0\.0\.1:\d+ within 300 ms/);
      assert.ok(performance.now() - started < 30_000, 'failed on the connect timeout, long before the idle one');
    } finally {
      await cleanup.run();
    }
  });

  test('a call whose answer takes longer than the connect timeout is answered: the timer ends with the handshake', async () => {
    const cleanup = new Cleanup();
    try {
      const { a, b } = await twoNodes(cleanup);
      const server = createNodeServer(b, (req, res) => {
        setTimeout(() => res.end(`answered ${req.url}`), 600);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      cleanup.add(() => {
        server.closeAllConnections();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      });
      const port = (server.address() as AddressInfo).port;
      const client = new NodeClient(viewWithNodeB(port), a, { connectMs: 200 });
      const first = await client.post('node-b', '/one', '{}');
      assert.equal(first.status, 200);
      assert.equal(first.text, 'answered /one');
      const second = await client.post('node-b', '/two', '{}'); // possibly on the kept-alive connection
      assert.equal(second.text, 'answered /two');
    } finally {
      await cleanup.run();
    }
  });
});
