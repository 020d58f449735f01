import assert from 'node:assert/strict';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeTempDir } from '@dotmesh/testkit';
import {
  currentBranchOf,
  emptyConfig,
  forgetDot,
  loadConfig,
  newRemote,
  parseConfig,
  saveConfig,
  serializeConfig,
} from './config.ts';

// The config the original dm 0.8.1 left at the end of the transcript.
const ORIGINAL =
  '{"CurrentRemote":"local","Remotes":{"local":{"User":"admin","Hostname":"127.0.0.1","Port":32607,"ApiKey":"sekrit","CurrentVolume":"foo","CurrentBranches":{"foo":"master"},"DefaultRemoteVolumes":null},"origin":{"User":"bob","Hostname":"127.0.0.1","Port":32607,"ApiKey":"otherkey","CurrentVolume":"","CurrentBranches":null,"DefaultRemoteVolumes":{"admin":{"apples":{"Namespace":"alice","Name":"apples"},"foo":{"Namespace":"bob","Name":"foo"}}}}},"S3Remotes":{}}';

describe('config file', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('config');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('round-trips the original client config byte for byte', () => {
    assert.equal(serializeConfig(parseConfig(ORIGINAL)), ORIGINAL);
  });

  it('keeps unknown keys, at the top and in remotes, after the known ones', () => {
    const text = '{"Extra":{"a":1},"CurrentRemote":"x","Remotes":{"x":{"Future":true,"User":"u","Hostname":"h","ApiKey":"k"}}}';
    assert.equal(
      serializeConfig(parseConfig(text)),
      '{"CurrentRemote":"x","Remotes":{"x":{"User":"u","Hostname":"h","ApiKey":"k","CurrentVolume":"","CurrentBranches":null,"DefaultRemoteVolumes":null,"Future":true}},"S3Remotes":{},"Extra":{"a":1}}',
    );
  });

  it('omits Port 0 and escapes like Go', () => {
    const c = emptyConfig();
    c.Remotes.hub = newRemote('alice', 'hub.example', 0, 'a<b>&c');
    assert.equal(
      serializeConfig(c),
      '{"CurrentRemote":"","Remotes":{"hub":{"User":"alice","Hostname":"hub.example","ApiKey":"a\\u003cb\\u003e\\u0026c","CurrentVolume":"","CurrentBranches":null,"DefaultRemoteVolumes":null}},"S3Remotes":{}}',
    );
    assert.equal(parseConfig(serializeConfig(c)).Remotes.hub?.ApiKey, 'a<b>&c');
  });

  it('writes 0600 in a 0700 directory, and reads a missing file as empty', async () => {
    const path = join(dir, 'sub', '.dotmesh', 'config');
    assert.deepEqual(await loadConfig(path), emptyConfig());
    await saveConfig(path, parseConfig(ORIGINAL));
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'sub', '.dotmesh'))).mode & 0o777, 0o700);
    assert.equal(await readFile(path, 'utf8'), ORIGINAL);
  });

  it('refuses a corrupt file with a clear error', async () => {
    const path = join(dir, 'bad');
    await writeFile(path, '{"CurrentRemote":');
    await assert.rejects(loadConfig(path), { code: 'INVALID_ARGUMENT', message: new RegExp(`cannot parse ${path}`) });
  });

  it('tracks current branches by display name and forgets deleted dots', () => {
    const c = parseConfig(ORIGINAL);
    const local = c.Remotes.local!;
    assert.equal(currentBranchOf(local, 'admin/foo'), 'master');
    assert.equal(currentBranchOf(local, 'other'), 'master');
    forgetDot(local, 'admin/foo');
    assert.equal(local.CurrentVolume, '');
    assert.deepEqual(local.CurrentBranches, {});
    const origin = c.Remotes.origin!;
    forgetDot(origin, 'foo');
    assert.deepEqual(Object.keys(origin.DefaultRemoteVolumes?.admin ?? {}), ['apples']);
  });
});
