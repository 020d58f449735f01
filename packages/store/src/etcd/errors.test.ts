import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EtcdError, GRPCInternalError, GRPCInvalidArgumentError, GRPCResourceExhastedError, GRPCUnavailableError } from 'etcd3';
import { EtcdErrors } from './errors.ts';

const errors = new EtcdErrors(['https://10.0.0.1:2379']);

test("etcd's transient answers are UNAVAILABLE (retry later), naming the endpoints, whatever carries them", () => {
  for (const e of [
    new EtcdError('etcdserver: no leader'),
    new GRPCInternalError('13 INTERNAL: etcdserver: leader changed'),
    new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: request timed out'),
    new GRPCResourceExhastedError('8 RESOURCE_EXHAUSTED: etcdserver: too many requests'),
    new EtcdError('etcdserver: unhealthy cluster'),
  ]) {
    const mapped = errors.map(e);
    assert.equal(mapped.code, 'UNAVAILABLE', e.message);
    assert.match(mapped.message, /etcd at https:\/\/10\.0\.0\.1:2379 is unavailable/);
    assert.ok(mapped.hint, 'a hint says what to do');
  }
});

test('refusals keep their own codes; anything unknown is INTERNAL', () => {
  assert.equal(
    errors.map(new GRPCInvalidArgumentError('etcdserver: too many operations in txn request')).code,
    'INVALID_ARGUMENT',
  );
  assert.equal(errors.map(new GRPCResourceExhastedError('etcdserver: mvcc: database space exceeded')).code, 'INVALID_ARGUMENT');
  assert.equal(errors.map(new EtcdError('etcdserver: key is not provided')).code, 'INTERNAL');
});
