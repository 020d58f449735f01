import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { parseMountInfo } from '@dotmesh/core';
import { status as Status } from '@grpc/grpc-js';
import { unsupported } from '../src/capabilities.ts';
import { ADMIN_SECRET_API_KEY, Clients, parseCredentials } from '../src/credentials.ts';
import { CsiError } from '../src/grpc-errors.ts';
import { nameHash, parseSnapshotId, parseVolumeId, snapshotId, volumeId } from '../src/ids.ts';
import { page } from '../src/paging.ts';
import { parseVolumeParameters } from '../src/volume-parameters.ts';

/** The Secret dotmesh's other key (the admin's password): never used by the driver. */
const ADMIN_PASSWORD_KEY = 'dotmesh-admin-password.txt';
const DOT = 'abcdef12-2222-4333-8444-555555555555';
const BRANCH = '66666666-7777-4888-9999-aaaaaaaaaaaa';

describe('volume and snapshot ids', () => {
  test('round trip, with and without a subdot', () => {
    for (const subdot of ['', 'pvc-a']) {
      const v = { namespace: 'alice', dotId: DOT, branchId: BRANCH, subdot };
      assert.deepEqual(parseVolumeId(volumeId(v)), v);
      const s = { ...v, commitId: 'csis-0123' };
      assert.deepEqual(parseSnapshotId(snapshotId(s)), s);
    }
    assert.equal(volumeId({ namespace: 'a', dotId: DOT, branchId: BRANCH, subdot: '' }), `v1/a/${DOT}/${BRANCH}`);
  });

  test('anything else is not an id of the driver', () => {
    for (const bad of [
      '',
      'fake-vol-id',
      `v1/a/${DOT}`,
      `v1/a/${DOT}/${BRANCH}/sub/extra`,
      `v1/../${DOT}/${BRANCH}`,
      `v1/a/${DOT}/not-a-uuid`,
      `v1/a/${DOT}/${BRANCH}/..`,
      `v2/a/${DOT}/${BRANCH}`,
      `s1/a/${DOT}/${BRANCH}`,
      `v1/a b/${DOT}/${BRANCH}`,
      `v1/a/${DOT.toUpperCase()}/${BRANCH}`,
    ]) {
      assert.equal(parseVolumeId(bad), undefined, bad);
    }
    assert.equal(parseSnapshotId(`s1/a/${DOT}/${BRANCH}/../x`), undefined);
    assert.equal(parseSnapshotId(`v1/a/${DOT}/${BRANCH}/c`), undefined);
  });

  test('names hash to 32 hex digits, the same every time', () => {
    assert.match(nameHash('pvc-1'), /^[0-9a-f]{32}$/);
    assert.equal(nameHash('pvc-1'), nameHash('pvc-1'));
    assert.notEqual(nameHash('pvc-1'), nameHash('pvc-2'));
    assert.match(nameHash('☃'.repeat(40)), /^[0-9a-f]{32}$/);
  });
});

describe('paging', () => {
  const items = ['v1/a', 'v1/c', 'v1/b', 'v1/d'].map((id) => ({ id }));
  const ours = (t: string) => t.startsWith('v1/');

  test('pages in id order; a token is the last id, valid after that entry is deleted', () => {
    const first = page(items, 2, '', ours);
    assert.deepEqual(
      first.entries.map((e) => e.id),
      ['v1/a', 'v1/b'],
    );
    assert.equal(first.nextToken, 'v1/b');
    const rest = page(
      items.filter((i) => i.id !== 'v1/b'),
      2,
      first.nextToken,
      ours,
    );
    assert.deepEqual(
      rest.entries.map((e) => e.id),
      ['v1/c', 'v1/d'],
    );
    assert.equal(rest.nextToken, '');
    assert.equal(page(items, 0, '', ours).entries.length, 4);
  });

  test('a token the driver never gave is ABORTED; negative sizes INVALID_ARGUMENT', () => {
    assert.throws(
      () => page(items, 1, 'garbage', ours),
      (e: unknown) => e instanceof CsiError && e.code === Status.ABORTED,
    );
    assert.throws(
      () => page(items, -1, '', ours),
      (e: unknown) => e instanceof CsiError && e.code === Status.INVALID_ARGUMENT,
    );
  });
});

describe('parameters, capabilities, credentials, mountinfo', () => {
  test('StorageClass parameters: known keys checked, unknown refused', () => {
    assert.deepEqual(parseVolumeParameters({}), {});
    assert.deepEqual(parseVolumeParameters({ dotmeshNamespace: 'team' }), { namespace: 'team' });
    assert.deepEqual(
      parseVolumeParameters({
        dotmeshDot: 'team/shared',
        'csi.storage.k8s.io/pvc/namespace': 'default',
        'csi.storage.k8s.io/pvc/name': 'data.v1',
      }),
      { dot: { namespace: 'team', name: 'shared' }, pvcSubdot: 'default-data_v1' },
    );
    const bads: Array<Record<string, string>> = [
      { dotmeshDot: 'noslash' },
      { dotmeshDot: 'a/b/c' },
      { dotmeshDot: '../x' },
      { dotmeshNamespace: 'a b' },
      { dotmeshNamspace: 'typo' },
      { '../../etc/passwd': 'x' },
    ];
    for (const bad of bads) {
      assert.throws(
        () => parseVolumeParameters(bad),
        (e: unknown) => e instanceof CsiError && e.code === Status.INVALID_ARGUMENT,
        JSON.stringify(bad),
      );
    }
  });

  test('only single-node mount volumes are served', () => {
    const mount = { fs_type: '', mount_flags: [] };
    assert.equal(unsupported({ mount, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' }), undefined);
    assert.equal(unsupported({ mount, access_mode: { mode: 'SINGLE_NODE_READER_ONLY' }, access_type: 'mount' }), undefined);
    assert.match(
      unsupported({ mount, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' }, access_type: 'mount' }) ?? '',
      /one node/,
    );
    assert.match(unsupported({ block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'block' }) ?? '', /block/);
    assert.match(
      unsupported({
        mount: { fs_type: 'ext4', mount_flags: [] },
        access_mode: { mode: 'SINGLE_NODE_WRITER' },
        access_type: 'mount',
      }) ?? '',
      /fs_type/,
    );
  });

  test('a credentials file error never repeats its content', () => {
    assert.deepEqual(parseCredentials('{"user":"u","apiKey":"k"}', 'f'), { user: 'u', apiKey: 'k' });
    for (const bad of ['SECRETKEY', '{"user":"u"}', '{"user":"","apiKey":"SECRETKEY"}']) {
      assert.throws(
        () => parseCredentials(bad, 'f'),
        (e: unknown) => e instanceof Error && !e.message.includes('SECRETKEY'),
      );
    }
  });

  test("a StorageClass's secrets: user and apiKey, or the Secret dotmesh's admin key; none is refused", async () => {
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(Buffer.from(String(req.headers.authorization).replace(/^Basic /, ''), 'base64').toString());
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: true }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/rpc`;
      const clients = new Clients({ url, own: { user: 'own', apiKey: 'o' }, timeoutMs: 5000 });
      await clients.forSecrets({ user: 'alice', apiKey: 'a' }, 'CreateVolume').call('Ping', null);
      await clients.forSecrets({ [ADMIN_SECRET_API_KEY]: 'k\n', [ADMIN_PASSWORD_KEY]: 'p' }, 'CreateVolume').call('Ping', null);
      assert.deepEqual(seen, ['alice:a', 'admin:k']);
      const refused: Array<Record<string, string> | undefined> = [
        undefined,
        {},
        { user: 'alice' },
        { user: 'alice', [ADMIN_SECRET_API_KEY]: 'k' },
      ];
      for (const secrets of refused) {
        assert.throws(() => clients.forSecrets(secrets, 'CreateVolume'), {
          code: Status.INVALID_ARGUMENT,
          message: /dotmesh-api-key\.txt/,
        });
      }
    } finally {
      server.close();
    }
  });

  test('mountinfo: escaped mount points and the read-only flag', () => {
    const text = [
      '36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue',
      '37 35 0:40 /vol/data /var/lib/kubelet/pods/x/with\\040space ro,relatime shared:2 - btrfs /dev/loop3 rw',
    ].join('\n');
    assert.deepEqual(
      parseMountInfo(text).map(({ root, mountPoint, readOnly }) => ({ root, mountPoint, readOnly })),
      [
        { root: '/mnt1', mountPoint: '/mnt/parent', readOnly: false },
        { root: '/vol/data', mountPoint: '/var/lib/kubelet/pods/x/with space', readOnly: true },
      ],
    );
  });
});
