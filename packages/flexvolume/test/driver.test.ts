import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { type DriverIo, parseMountArgs, runDriver } from '../src/index.ts';

test('mount options: namespace (default admin), name, subdot ("" → __default__), read-only from the kubelet', () => {
  assert.deepEqual(parseMountArgs('/var/lib/kubelet/pods/u/volumes/dotmesh.io~dm/v', JSON.stringify({ name: 'apples' })), {
    Namespace: 'admin',
    Name: 'apples',
    Subdot: '__default__',
    Target: '/var/lib/kubelet/pods/u/volumes/dotmesh.io~dm/v',
    ReadOnly: false,
  });
  const full = parseMountArgs(
    '/t',
    JSON.stringify({
      namespace: 'alice',
      name: 'db@staging',
      subdot: '__root__',
      'kubernetes.io/readwrite': 'ro',
      'kubernetes.io/fsType': '',
      'kubernetes.io/pod.name': 'p',
    }),
  );
  assert.deepEqual(full, { Namespace: 'alice', Name: 'db@staging', Subdot: '__root__', Target: '/t', ReadOnly: true });
  assert.equal(parseMountArgs('/t', JSON.stringify({ name: 'a@master', subdot: '' })).Name, 'a');
});

test('mount options: hostile or malformed input is refused with a message naming it', () => {
  const cases: [string | undefined, string | undefined, RegExp][] = [
    ['/t', JSON.stringify({ name: '../x' }), /invalid dot name/],
    ['/t', JSON.stringify({ name: 'a@../b' }), /invalid branch name/],
    ['/t', JSON.stringify({ name: 'a', namespace: 'x/y' }), /invalid namespace name/],
    ['/t', JSON.stringify({ name: 'a', subdot: '..' }), /invalid subdot name/],
    ['/t', JSON.stringify({ name: 7 }), /name must be a string/],
    ['/t', JSON.stringify({ name: 'a', extra: 'b' }), /unknown option "extra"/],
    ['/t', JSON.stringify({ name: 'a', 'kubernetes.io/readwrite': 'rwx' }), /readwrite must be/],
    ['/t', JSON.stringify({}), /"name" \(the dot\) is missing/],
    ['/t', 'null', /JSON object/],
    ['/t', '{', /not JSON/],
    ['/t', undefined, /needs the JSON options/],
    ['/t', `{"name":"${'a'.repeat(70_000)}"}`, /over 65536 bytes/],
    ['t', JSON.stringify({ name: 'a' }), /not a clean absolute path/],
    ['/a//b', JSON.stringify({ name: 'a' }), /not a clean absolute path/],
    ['/a/./b', JSON.stringify({ name: 'a' }), /not a clean absolute path/],
    ['/a/\nb', JSON.stringify({ name: 'a' }), /not a clean absolute path/],
    [undefined, JSON.stringify({ name: 'a' }), /must be a path/],
  ];
  for (const [dir, options, message] of cases) {
    assert.throws(() => parseMountArgs(dir, options), message, `${dir} ${options?.slice(0, 60)}`);
  }
});

/** Records what the driver asks of the world; the server's answers are given. */
function recordingIo(o: { mounted?: boolean; post?: (path: string) => unknown; bindFails?: boolean } = {}) {
  const calls: string[] = [];
  let mounted = o.mounted ?? false;
  const io: DriverIo = {
    post: async (path, body) => {
      calls.push(`post ${path} ${JSON.stringify(body)}`);
      return o.post ? o.post(path) : { Path: '/pool/fs/__default__', FilesystemId: 'f' };
    },
    bind: async (source, target, readOnly) => {
      calls.push(`bind ${source} ${target} ${readOnly}`);
      if (o.bindFails) throw new Error('mount: permission denied');
      mounted = true;
    },
    unmount: async (target) => {
      calls.push(`unmount ${target}`);
      mounted = false;
    },
    isMountPoint: async () => mounted,
  };
  return { io, calls };
}

test('init, unsupported calls, mount and unmount', async () => {
  assert.deepEqual(await runDriver(['init'], recordingIo().io), { status: 'Success', capabilities: { attach: false } });
  for (const call of ['attach', 'getvolumename', 'mountdevice', '']) {
    assert.equal((await runDriver([call], recordingIo().io)).status, 'Not supported');
  }
  const m = recordingIo();
  const reply = await runDriver(['mount', '/t', JSON.stringify({ name: 'apples' })], m.io);
  assert.equal(reply.status, 'Success');
  assert.deepEqual(m.calls, [
    'post /flexvolume/v1/mount {"Namespace":"admin","Name":"apples","Subdot":"__default__","Target":"/t","ReadOnly":false}',
    'bind /pool/fs/__default__ /t false',
  ]);
  const again = recordingIo({ mounted: true });
  await runDriver(['mount', '/t', JSON.stringify({ name: 'apples' })], again.io);
  assert.equal(again.calls.length, 1, 'an existing mount is not bound twice');

  const u = recordingIo({ mounted: true });
  assert.deepEqual(await runDriver(['unmount', '/t'], u.io), { status: 'Success' });
  assert.deepEqual(u.calls, ['unmount /t', 'post /flexvolume/v1/unmount {"Target":"/t"}']);
});

test('a failed bind ends the use it recorded; a server refusal is a Failure with its hint', async () => {
  const b = recordingIo({ bindFails: true });
  const reply = await runDriver(['mount', '/t', JSON.stringify({ name: 'apples' })], b.io);
  assert.equal(reply.status, 'Failure');
  assert.match(reply.message ?? '', /permission denied/);
  assert.equal(b.calls.at(-1), 'post /flexvolume/v1/unmount {"Target":"/t"}');

  const refused = recordingIo({
    post: () => {
      throw new DotmeshError('IN_USE', 'cannot move the branch: it is in use on node n2', { hint: 'stop the pod there first' });
    },
  });
  assert.deepEqual(await runDriver(['mount', '/t', JSON.stringify({ name: 'apples' })], refused.io), {
    status: 'Failure',
    message: 'cannot move the branch: it is in use on node n2 (stop the pod there first)',
  });
});

test('unmount with no server to reach still unbinds and succeeds; any other refusal fails it', async () => {
  const gone = recordingIo({
    mounted: true,
    post: () => {
      throw new DotmeshError('UNAVAILABLE', 'cannot reach dotmesh-server on /x/dm.sock: ENOENT', { data: { unreachable: true } });
    },
  });
  const reply = await runDriver(['unmount', '/t'], gone.io);
  assert.equal(reply.status, 'Success');
  assert.deepEqual(gone.calls.slice(0, 1), ['unmount /t']);
  const refused = recordingIo({
    post: () => {
      throw new DotmeshError('UNAVAILABLE', 'the store is unavailable');
    },
  });
  assert.equal((await runDriver(['unmount', '/t'], refused.io)).status, 'Failure');
});
