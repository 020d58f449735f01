import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { isDotmeshError } from '@dotmesh/core';
import { DotmeshClient } from '@dotmesh/rpc';
import { MemoryDriver, type StorageDriver } from '@dotmesh/storage';
import { MemoryStore, type Store } from '@dotmesh/store';
import { makeTempDir } from '@dotmesh/testkit';
import type { ContainerTracker } from '../src/dots/containers.ts';
import { SILENT_LOGGER } from '../src/log.ts';
import { type RunningServer, startServer } from '../src/server.ts';

/** A whole server in this process on the in-memory driver and store (fast tests of the layers above storage). */
export interface InProcessServer {
  readonly server: RunningServer;
  readonly driver: StorageDriver;
  readonly store: Store;
  readonly admin: DotmeshClient;
  readonly url: string;
  readonly apiKey: string;
  readonly password: string;
  client(user: string, secret: string): DotmeshClient;
  /**
   * Stops the server and starts a new one on the same driver and store (a restart); `whileDown`
   * runs in between (what other nodes do meanwhile).
   */
  restart(whileDown?: () => Promise<void>): Promise<InProcessServer>;
  close(): Promise<void>;
}

/**
 * Starts a server on `options.driver` and `options.store` (fresh in-memory ones when absent).
 * Its directory (container_mnt links) is `options.dir`, else a new one under the test root that
 * `close()` removes, also after any number of restarts.
 */
export async function startInProcess(
  options: {
    driver?: StorageDriver;
    store?: Store;
    dir?: string;
    crash?: () => never;
    /** The node id (default feedfacecafe0001; a given driver's pool id should match it). */
    nodeId?: string;
    /** One node of several: its node-to-node endpoint (see startServer's `cluster`). */
    cluster?: NonNullable<Parameters<typeof startServer>[0]['cluster']>;
    /** Its store lease (short ones for tests of expiry). */
    nodeLease?: { ttlSeconds: number; marginMs: number };
    /** close() leaves the store open (servers sharing one store). */
    keepStoreOpen?: boolean;
    /** Where container lists come from (default: none, as without Docker). */
    containers?: ContainerTracker;
    /** false: commit streams as plain HTTP bodies only, as servers before the upgraded streams. */
    transferStreamUpgrade?: boolean;
  } = {},
): Promise<InProcessServer> {
  const nodeId = options.nodeId ?? 'feedfacecafe0001';
  return launch({
    driver: options.driver ?? new MemoryDriver({ poolId: nodeId }),
    store: options.store ?? (await MemoryStore.open()),
    ownsStore: options.keepStoreOpen !== true,
    dir: options.dir ?? (await makeTempDir('inproc')),
    ownsDir: options.dir === undefined,
    nodeId,
    ...(options.crash ? { crash: options.crash } : {}),
    ...(options.cluster ? { cluster: options.cluster } : {}),
    ...(options.nodeLease ? { nodeLease: options.nodeLease } : {}),
    ...(options.containers ? { containers: options.containers } : {}),
    ...(options.transferStreamUpgrade === false ? { transferStreamUpgrade: false } : {}),
  });
}

interface LaunchOptions {
  readonly driver: StorageDriver;
  readonly store: Store;
  readonly dir: string;
  /** The directory was made for this server: close() removes it. */
  readonly ownsDir: boolean;
  /** close() closes the store (not when several servers share it). */
  readonly ownsStore: boolean;
  readonly nodeId: string;
  readonly crash?: () => never;
  readonly cluster?: NonNullable<Parameters<typeof startServer>[0]['cluster']>;
  readonly nodeLease?: { ttlSeconds: number; marginMs: number };
  readonly containers?: ContainerTracker;
  readonly transferStreamUpgrade?: boolean;
}

async function launch(o: LaunchOptions): Promise<InProcessServer> {
  const { driver, store, dir } = o;
  const apiKey = 'TESTAPIKEY';
  const password = 'test-password';
  const server = await startServer({
    driver,
    store,
    logger: SILENT_LOGGER,
    nodeId: o.nodeId,
    containerMountDir: join(dir, 'container_mnt'),
    initialAdmin: { password, apiKey },
    listenHost: '127.0.0.1',
    port: 0,
    closeStorage: false,
    ...(o.crash ? { crash: o.crash } : {}),
    ...(o.cluster ? { cluster: o.cluster } : {}),
    ...(o.nodeLease ? { nodeLease: o.nodeLease } : {}),
    ...(o.containers ? { containers: o.containers } : {}),
    ...(o.transferStreamUpgrade === false ? { transferStreamUpgrade: false } : {}),
  });
  const url = `http://127.0.0.1:${server.port}/rpc`;
  const client = (user: string, secret: string) => new DotmeshClient({ url, user, apiKey: secret });
  const self: InProcessServer = {
    server,
    driver,
    store,
    url,
    apiKey,
    password,
    admin: client('admin', apiKey),
    client,
    async restart(whileDown) {
      await server.close();
      await whileDown?.();
      return launch(o);
    },
    async close() {
      await server.close();
      await driver.close();
      if (o.ownsStore) await store.close();
      if (o.ownsDir) await rm(dir, { recursive: true, force: true });
    },
  };
  return self;
}

/** POSTs a raw body to a URL with Basic auth; returns status and text (no JSON-RPC handling). */
export function postRaw(
  url: string,
  auth: string,
  body: string,
  contentType = 'application/json',
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: { 'Content-Type': contentType, Authorization: `Basic ${Buffer.from(auth).toString('base64')}` },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Asserts that `p` fails with a DotmeshError of `code` (and a message matching `message`). */
export async function rejectsCode(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isDotmeshError(e), String(e));
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/** Creates `admin/<name>` and a branch of it from its initial commit; returns their filesystem ids. */
export async function createDotWithBranch(
  client: DotmeshClient,
  name: string,
  branch: string,
): Promise<{ dotId: string; branchId: string }> {
  await client.call('Create', { Namespace: 'admin', Name: name });
  const [initial] = await client.call('Commits', { Namespace: 'admin', Name: name, Branch: '' });
  await client.call('Branch', {
    Namespace: 'admin',
    Name: name,
    SourceBranch: 'master',
    NewBranchName: branch,
    SourceCommitId: initial!.Id,
  });
  return {
    dotId: await client.call('Lookup', { Namespace: 'admin', Name: name, Branch: '' }),
    branchId: await client.call('Lookup', { Namespace: 'admin', Name: name, Branch: branch }),
  };
}
