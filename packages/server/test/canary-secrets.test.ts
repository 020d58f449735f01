import assert from 'node:assert/strict';
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EtcdStore } from '@dotmesh/store/etcd';
import {
  Cleanup,
  type EtcdProcess,
  processTree,
  type ServerProcess,
  STORE_KINDS,
  skipUnless,
  startServerProcess,
  storeOptionsFor,
} from '@dotmesh/testkit';

/**
 * R5: canary credentials run through the server; afterwards they appear in no log, no child
 * argv or environment, no error message, no dump and nowhere in the store: not in the
 * embedded store's files (0600, under a 0700 dir), not in etcd's keyspace nor in any file of
 * its data directory (WAL, snapshots, database). The store holds verifiers only, and GetApiKey
 * with the password still returns the key (it keeps it sealed under the password).
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);
const CANARY_KEY = 'CANARYKEYQ7F3ZP2MXW9ZZ';
const CANARY_PASSWORD = 'canary-password-8c1e4b';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== 'mnt') out.push(...(await filesUnder(p)));
    else if (entry.isFile() && entry.name !== 'dotmesh_data') out.push(p); // the pool file: its contents are user data
  }
  return out;
}

for (const kind of STORE_KINDS) {
  describe(`canary credentials never leak (R5, ${kind} store)`, {
    skip: skipUnless(['root', 'btrfs', 'losetup', ...(kind === 'etcd' ? (['etcd'] as const) : [])]),
  }, () => {
    const cleanup = new Cleanup();
    let s: ServerProcess;
    let etcd: EtcdProcess | undefined;
    const replies: string[] = [];
    before(async () => {
      ({ etcd } = await storeOptionsFor(kind, cleanup));
      s = await startServerProcess({ cleanup, apiKey: CANARY_KEY, password: CANARY_PASSWORD, ...(etcd ? { etcd } : {}) });
    });
    after(async () => cleanup.run());

    test('exercise the API with the canaries, including failures', async () => {
      const byPassword = s.client('admin', CANARY_PASSWORD);
      await s.admin.call('Create', { Namespace: 'admin', Name: 'canary' });
      await byPassword.call('Commit', {
        Namespace: 'admin',
        Name: 'canary',
        Branch: '',
        Message: 'm',
        Metadata: { note: 'hello' },
      });
      for (const bad of [`${CANARY_PASSWORD}x`, `x${CANARY_KEY}`]) {
        await assert.rejects(s.client('admin', bad).call('Ping', null), (e: Error) => {
          replies.push(e.message);
          return true;
        });
      }
      await assert.rejects(
        s.admin.call('Commit', { Namespace: 'admin', Name: 'nope', Branch: '', Message: 'm', Metadata: {} }),
        (e: Error) => {
          replies.push(e.message);
          return true;
        },
      );
      replies.push(JSON.stringify(await s.admin.call('DumpInternalState', '')));
      replies.push(JSON.stringify(await s.admin.call('CurrentUser', null)));
      replies.push(JSON.stringify(await s.admin.call('DumpEtcd', { Prefix: '' })));
      assert.deepEqual(await s.admin.call('GetApiKey', null), { ApiKey: CANARY_KEY });
      assert.deepEqual(await byPassword.call('GetApiKey', null), { ApiKey: CANARY_KEY }, 'the password opens the sealed key');
    });

    test('no log, reply, argv, environment or store file holds a canary', async () => {
      for (const text of replies) {
        assert.ok(!text.includes(CANARY_KEY) && !text.includes(CANARY_PASSWORD), `reply leaks a secret: ${text.slice(0, 200)}`);
      }
      const files = await filesUnder(s.dir);
      assert.ok(files.some((f) => f.endsWith('dotmesh-server.log')));
      assert.equal(
        files.some((f) => f.endsWith('store.db')),
        kind === 'embedded',
        'the embedded store file is among the files checked',
      );
      for (const f of files) {
        const text = await readFile(f, 'latin1');
        assert.ok(!text.includes(CANARY_KEY) && !text.includes(CANARY_PASSWORD), `${f} leaks a secret`);
        if (f.includes('store.db')) assert.equal((await stat(f)).mode & 0o077, 0, `${f} is private`);
      }
      assert.equal((await stat(join(s.dir, 'server'))).mode & 0o077, 0, 'state dir is 0700');
      for (const pid of processTree(s.pid)) {
        for (const part of ['cmdline', 'environ']) {
          const text = await readFile(`/proc/${pid}/${part}`, 'latin1').catch(() => '');
          assert.ok(!text.includes(CANARY_KEY) && !text.includes(CANARY_PASSWORD), `/proc/${pid}/${part} leaks a secret`);
        }
        assert.ok((await readlink(`/proc/${pid}/exe`).catch(() => '')) !== '');
      }
    });

    // The embedded store's files were checked with the server's files above.
    if (kind !== 'etcd') return;
    test('etcd: no key of the keyspace and no file of the member’s data directory holds a canary', async () => {
      const member = etcd!;
      const store = await EtcdStore.open({
        endpoints: member.endpoints,
        ...(member.caPem ? { ca: member.caPem, cert: member.certPem!, key: member.keyPem! } : {}),
      });
      try {
        const { kvs } = await store.range('');
        assert.ok(
          kvs.some((kv) => kv.key.startsWith('dotmesh.io/users/users/')),
          'the users are in this keyspace',
        );
        for (const kv of kvs) {
          const text = `${kv.key}=${kv.value}`;
          assert.ok(!text.includes(CANARY_KEY) && !text.includes(CANARY_PASSWORD), `etcd key ${kv.key} leaks a secret`);
        }
      } finally {
        await store.close();
      }
      const files = await filesUnder(member.dataDir);
      assert.ok(
        files.some((f) => f.endsWith('.wal')),
        'the WAL is among the files checked',
      );
      assert.ok(
        files.some((f) => f.endsWith('/db')),
        'and the database',
      );
      for (const f of files) {
        const bytes = await readFile(f);
        assert.ok(!bytes.includes(CANARY_KEY) && !bytes.includes(CANARY_PASSWORD), `${f} leaks a secret`);
      }
    });
  });
}

/**
 * R5 for transfers: the peer's API key, given to the initiating server in a Transfer request,
 * lives only in that server's memory: it appears in no log, store entry or transfer record of
 * either server, in no GetTransfer reply, and in no argv or environment of any process they
 * run while the transfer moves data.
 */
describe('a transfer’s peer key never leaks (R5)', { skip }, () => {
  const cleanup = new Cleanup();
  const PEER_KEY = 'PEERCANARYKEYX4M8Q2WZT';
  let initiator: ServerProcess;
  let peer: ServerProcess;
  const seen: string[] = [];

  before(async () => {
    [initiator, peer] = await Promise.all([
      startServerProcess({ cleanup }),
      startServerProcess({ cleanup, apiKey: PEER_KEY, password: 'peer-password-9d2f' }),
    ]);
  });
  after(async () => cleanup.run());

  test('push and pull with the peer key; watch every process while data moves', async () => {
    const path = await initiator.admin.call('Procure', { Namespace: 'admin', Name: 'moving', Subdot: '' });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(path, 'payload'), Buffer.alloc(96 * 1024 * 1024, 7));
    await initiator.admin.call('Commit', { Namespace: 'admin', Name: 'moving', Branch: '', Message: 'm', Metadata: {} });
    const request = (direction: 'push' | 'pull', apiKey = PEER_KEY) => ({
      Peer: '127.0.0.1',
      User: 'admin',
      Port: peer.port,
      ApiKey: apiKey,
      Direction: direction,
      LocalNamespace: 'admin',
      LocalName: 'moving',
      LocalBranchName: '',
      RemoteNamespace: 'admin',
      RemoteName: 'moving',
      RemoteBranchName: '',
      TargetCommit: '',
      StashDivergence: false,
      PeerCertSha256: '',
      PeerHttps: false,
    });
    const scanProcesses = async () => {
      for (const server of [initiator, peer]) {
        for (const pid of processTree(server.pid)) {
          for (const part of ['cmdline', 'environ']) seen.push(await readFile(`/proc/${pid}/${part}`, 'latin1').catch(() => ''));
        }
      }
    };
    for (const direction of ['push', 'pull'] as const) {
      const id = await initiator.admin.call('Transfer', request(direction));
      for (;;) {
        await scanProcesses();
        const r = await initiator.admin.call('GetTransfer', id);
        seen.push(JSON.stringify(r));
        if (r.Status === 'finished' || r.Status === 'error') {
          assert.equal(r.Status, 'finished', r.Message);
          break;
        }
      }
    }
    // a wrong key fails, and its error names no key
    await assert.rejects(initiator.admin.call('Transfer', request('push', `${PEER_KEY}x`)), (e: Error) => {
      seen.push(e.message);
      return true;
    });
    seen.push(JSON.stringify(await initiator.admin.call('DumpInternalState', '')));
    seen.push(JSON.stringify(await initiator.admin.call('DumpEtcd', { Prefix: '' })));
  });

  test('no reply, process, log, store or transfer record of either server holds the peer key', async () => {
    for (const text of seen) assert.ok(!text.includes(PEER_KEY), `leaks the peer key: ${text.slice(0, 200)}`);
    const files = await filesUnder(initiator.dir);
    assert.ok(
      files.some((f) => f.includes('store.db')),
      'the initiator’s store (where transfer records live) is checked',
    );
    for (const f of files) assert.ok(!(await readFile(f, 'latin1')).includes(PEER_KEY), `${f} holds the peer key`);
    const peerFiles = await filesUnder(peer.dir);
    assert.ok(
      peerFiles.some((f) => f.endsWith('store.db')),
      'the peer’s store (its user record: verifiers only) is checked',
    );
    for (const f of peerFiles) assert.ok(!(await readFile(f, 'latin1')).includes(PEER_KEY), `${f} holds the peer key`);
  });
});
