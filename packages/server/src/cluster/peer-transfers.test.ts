import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import { SILENT_LOGGER } from '../log.ts';
import { PeerTransfers } from './peer-transfers.ts';
import type { ClusterNode, ViewChange } from './view.ts';

/** The part of a cluster view PeerTransfers follows: live nodes, and a way to make one go. */
function liveNodes(...ids: string[]) {
  const live = new Set(ids);
  const listeners = new Set<(c: ViewChange) => void>();
  return {
    node: (id: string): ClusterNode | undefined => (live.has(id) ? { id, addresses: ['127.0.0.1'], clusterPort: 1 } : undefined),
    onChange(l: (c: ViewChange) => void) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    /** Its address key deleted: its lease expired. */
    leave(id: string) {
      live.delete(id);
      for (const l of listeners) l({ kind: 'node', nodeId: id });
    },
  };
}

/** The idle timeout a receive would otherwise wait for (the server's default). */
const IDLE_TIMEOUT_MS = 30_000;

describe('PeerTransfers: a receive from a gone node stops at once', () => {
  const server = createServer();
  const accepted: Socket[] = [];
  const clients: Socket[] = [];
  before(async () => {
    server.on('connection', (s) => accepted.push(s));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  after(async () => {
    for (const s of [...accepted, ...clients]) s.destroy();
    server.close();
    await once(server, 'close');
  });

  /** A connection whose sender wrote part of a stream and then fell silent; the receiving end. */
  async function stalledStream(): Promise<{ receiving: Socket; sender: Socket }> {
    const port = (server.address() as { port: number }).port;
    const before = accepted.length;
    const sender = tcpConnect(port, '127.0.0.1');
    clients.push(sender);
    await once(sender, 'connect');
    sender.write(Buffer.alloc(64 * 1024, 1)); // half a commit, then silence
    while (accepted.length === before) await new Promise((r) => setTimeout(r, 5));
    const receiving = accepted.at(-1)!;
    receiving.setTimeout(IDLE_TIMEOUT_MS, () => receiving.destroy(new Error('idle timeout')));
    return { receiving, sender };
  }

  it('destroys the receiving connection with the reason when the view sees its node leave, well before the idle timeout', async () => {
    const view = liveNodes('n1', 'n2');
    const peers = new PeerTransfers(view, SILENT_LOGGER);
    peers.start();
    const { receiving, sender } = await stalledStream();
    const other = await stalledStream();
    peers.track('n1', receiving);
    peers.track('n2', other.receiving);
    let received = 0;
    receiving.on('data', (c: Buffer) => {
      received += c.length;
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(peers.state(), { 'peerTransfers.cut': '0', 'peerTransfers.open.n1': '1', 'peerTransfers.open.n2': '1' });

    const started = performance.now();
    const failed = once(receiving, 'error').then(([e]) => e as unknown);
    view.leave('n1');
    const error = await failed;
    const ms = performance.now() - started;
    assert.ok(ms < IDLE_TIMEOUT_MS / 10, `the receive ended after ${Math.round(ms)} ms, not after the idle timeout`);
    assert.ok(isDotmeshError(error) && error.code === 'UNAVAILABLE', String(error));
    assert.match(error.message, /node n1 is gone \(its lease in the cluster store expired\): the transfer with it was cut/);
    assert.equal(received, 64 * 1024, 'it had received part of the stream');
    assert.ok(receiving.destroyed);
    await once(sender, 'close'); // the sender's end sees it too
    assert.equal(other.receiving.destroyed, false, 'a transfer with a live node goes on');
    assert.deepEqual(peers.state(), { 'peerTransfers.cut': '1', 'peerTransfers.open.n2': '1' });
    peers.stop();
  });

  it('forgets a connection once it closes; a node that leaves with none open costs nothing', async () => {
    const view = liveNodes('n3');
    const peers = new PeerTransfers(view, SILENT_LOGGER);
    peers.start();
    const { receiving } = await stalledStream();
    peers.track('n3', receiving);
    peers.track('n3', receiving); // the same keep-alive connection again
    assert.equal(peers.state()['peerTransfers.open.n3'], '1');
    receiving.destroy();
    await once(receiving, 'close');
    assert.equal(peers.state()['peerTransfers.open.n3'], undefined);
    view.leave('n3');
    assert.equal(peers.cut('n3'), 0);
    assert.equal(peers.state()['peerTransfers.cut'], '0');
    peers.stop();
  });
});
