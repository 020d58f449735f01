import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { assertRefused } from '@dotmesh/testkit';
import type { DotRemoteObject, DotTransferObject } from './dot-resources.ts';
import { apiKeyFrom, errorStatus, redact, remoteSettings, transferPlan } from './dot-transfer-spec.ts';

const remote = (spec: Record<string, unknown>): DotRemoteObject => ({ metadata: { name: 'prod', namespace: 'dotmesh' }, spec });
const good = remote({
  host: 'dotmesh.example.com',
  port: 32606,
  caPin: `sha256:${'A'.repeat(64)}`,
  apiKeySecret: { name: 'prod-key' },
});
const transfer = (spec: Record<string, unknown>): DotTransferObject => ({ metadata: { name: 't', namespace: 'dotmesh' }, spec });
const refused = assertRefused;

test('a DotTransfer and its DotRemote make the Transfer call: HTTPS with the CA pin, names defaulted, no key in it', () => {
  const plan = transferPlan(transfer({ remote: 'prod', direction: 'push', dot: 'web', branch: 'feature' }), good);
  assert.deepEqual(plan.request, {
    Peer: 'dotmesh.example.com',
    User: 'admin',
    Port: 32606,
    Direction: 'push',
    LocalNamespace: 'admin',
    LocalName: 'web',
    LocalBranchName: 'feature',
    RemoteNamespace: 'admin',
    RemoteName: 'web',
    RemoteBranchName: 'feature',
    TargetCommit: '',
    StashDivergence: false,
    PeerCertSha256: '',
    PeerHttps: true,
    PeerCaPin: `sha256:${'a'.repeat(64)}`,
  });
  assert.deepEqual(plan.secret, { name: 'prod-key', key: 'apiKey' });
  const other = transferPlan(
    transfer({
      remote: 'prod',
      direction: 'pull',
      dot: 'alice/db',
      branch: 'master',
      remoteDot: 'bob/db2',
      remoteBranch: 'x',
      stashDivergence: true,
    }),
    remote({ host: '10.0.0.7', port: 32607, user: 'bob', plainHttp: true, apiKeySecret: { name: 's', key: 'key.txt' } }),
  );
  assert.equal(other.request.LocalNamespace, 'alice');
  assert.equal(other.request.LocalBranchName, '', 'master is "" on the wire');
  assert.equal(other.request.RemoteName, 'db2');
  assert.equal(other.request.RemoteBranchName, 'x');
  assert.equal(other.request.StashDivergence, true);
  assert.equal(other.request.PeerHttps, false);
  assert.equal(other.request.User, 'bob');
  assert.equal('PeerCaPin' in other.request, false);
  assert.deepEqual(other.secret, { name: 's', key: 'key.txt' });
  assert.equal(remoteSettings(remote({ host: '[fd00::1]', port: 443, apiKeySecret: { name: 's' } })).plainHttp, false);
});

test('bad DotTransfers are refused with the field and a hint', () => {
  refused(
    () => transferPlan(transfer({ remote: 'prod', direction: 'push', dot: '../../etc' }), good),
    'INVALID_NAME',
    /^spec\.dot: .*\.\.\/\.\.\/etc/,
  );
  refused(
    () => transferPlan(transfer({ remote: 'prod', direction: 'push', dot: 'a b' }), good),
    'INVALID_NAME',
    /^spec\.dot: invalid dot name "a b"/,
  );
  refused(
    () => transferPlan(transfer({ remote: 'prod', direction: 'push', dot: 'x', remoteDot: 'a/b/c' }), good),
    'INVALID_NAME',
    /^spec\.remoteDot:/,
  );
  refused(
    () => transferPlan(transfer({ remote: 'prod', direction: 'push', dot: 'x', branch: 'no/slash' }), good),
    'INVALID_NAME',
    /^spec\.branch: invalid branch name/,
  );
  refused(
    () => transferPlan(transfer({ remote: 'prod', direction: 'sideways', dot: 'x' }), good),
    'INVALID_ARGUMENT',
    /spec\.direction must be push or pull/,
  );
  refused(
    () => transferPlan(transfer({ direction: 'push', dot: 'x' }), good),
    'INVALID_ARGUMENT',
    /spec\.remote must be a non-empty string/,
  );
  refused(
    () => transferPlan(transfer({ remote: '../x', direction: 'push', dot: 'x' }), good),
    'INVALID_ARGUMENT',
    /spec\.remote "\.\.\/x" is not an object name/,
  );
  refused(
    () => transferPlan(transfer({ remote: 'prod', direction: 'push', dot: 'x', stashDivergence: 'yes' }), good),
    'INVALID_ARGUMENT',
    /stashDivergence/,
  );
  refused(
    () => transferPlan(transfer({ remote: 'prod', direction: 'push', dot: 'x' }), undefined),
    'INVALID_ARGUMENT',
    /^DotRemote dotmesh\/prod does not exist$/,
  );
});

test('bad DotRemotes are refused naming the remote and the field', () => {
  const bad = (spec: Record<string, unknown>, message: RegExp) =>
    refused(
      () => remoteSettings(remote({ host: 'h', port: 1, apiKeySecret: { name: 's' }, ...spec })),
      'INVALID_ARGUMENT',
      message,
    );
  bad({ host: 'a host' }, /^DotRemote dotmesh\/prod: spec\.host "a host" is not a host name or address$/);
  bad({ host: 'http://h' }, /spec\.host/);
  bad({ host: '-h' }, /spec\.host/);
  bad({ port: 0 }, /spec\.port must be a port number/);
  bad({ port: 70000 }, /spec\.port/);
  bad({ port: '32607' }, /spec\.port/);
  bad({ caPin: 'sha256:abc' }, /spec\.caPin is not sha256:<64 hex digits>/);
  bad({ caPin: `sha256:${'0'.repeat(64)}`, plainHttp: true }, /cannot both be set/);
  bad({ plainHttp: 'yes' }, /plainHttp must be true or false/);
  bad({ apiKeySecret: {} }, /spec\.apiKeySecret\.name must be a non-empty string/);
  bad({ apiKeySecret: { name: 'Bad_Name' } }, /spec\.apiKeySecret\.name is not an object name/);
  bad({ apiKeySecret: { name: 's', key: 'a/b' } }, /spec\.apiKeySecret\.key is not a Secret key/);
  refused(
    () => remoteSettings(remote({ host: 'h', port: 1, user: '../root', apiKeySecret: { name: 's' } })),
    'INVALID_NAME',
    /namespace name/,
  );
});

test('the API key from the Secret: a missing Secret or key is an error naming it', () => {
  const plan = transferPlan(transfer({ remote: 'prod', direction: 'push', dot: 'x' }), good);
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  assert.equal(apiKeyFrom({ data: { apiKey: b64('KEY123\n') } }, plan, 'dotmesh'), 'KEY123');
  refused(
    () => apiKeyFrom(undefined, plan, 'dotmesh'),
    'INVALID_ARGUMENT',
    /^the Secret dotmesh\/prod-key holding the remote’s API key does not exist$/,
  );
  refused(
    () => apiKeyFrom({ data: { other: b64('x') } }, plan, 'dotmesh'),
    'INVALID_ARGUMENT',
    /^the Secret dotmesh\/prod-key has no key apiKey$/,
  );
});

test('error statuses and redaction', () => {
  assert.deepEqual(errorStatus(new DotmeshError('DIVERGED', 'diverged', { hint: 'stash' })), {
    code: 'DIVERGED',
    message: 'diverged',
    hint: 'stash',
  });
  assert.deepEqual(errorStatus(new Error('boom')), { code: 'INTERNAL', message: 'boom' });
  assert.equal(redact('key SECRETKEY and SECRETKEY', 'SECRETKEY'), 'key <redacted> and <redacted>');
  assert.equal(redact('nothing here', ''), 'nothing here');
});
