import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { decodeParams, METHODS, methodFromWire } from './methods.ts';

function invalid(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DotmeshError);
    assert.equal(e.code, 'INVALID_ARGUMENT');
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

describe('decodeParams', () => {
  it('decodes the transcript params of Commit', () => {
    const p = decodeParams('Commit', {
      Namespace: 'admin',
      Name: 'foo',
      Branch: '',
      Message: 'second',
      Metadata: { k1: 'v1', k2: 'v2' },
    });
    assert.deepEqual(p, { Namespace: 'admin', Name: 'foo', Branch: '', Message: 'second', Metadata: { k1: 'v1', k2: 'v2' } });
  });

  it('matches field names case-insensitively and ignores unknown fields', () => {
    const p = decodeParams('Lookup', { namespace: 'admin', NAME: 'foo', branch: 'b1', Extra: 1 });
    assert.deepEqual(p, { Namespace: 'admin', Name: 'foo', Branch: 'b1' });
  });

  it('fills missing and null fields with zero values', () => {
    assert.deepEqual(decodeParams('Commit', { Name: 'foo', Metadata: null }), {
      Namespace: '',
      Name: 'foo',
      Branch: '',
      Message: '',
      Metadata: {},
    });
  });

  it('accepts null, absent and {} params for methods without params', () => {
    for (const raw of [null, undefined, {}, { anything: 1 }]) assert.deepEqual(decodeParams('List', raw), {});
  });

  it('accepts bare strings for string methods, and "" for null', () => {
    assert.equal(decodeParams('Get', '286e4f1b-eed1-4e55-a849-f4159fdb2638'), '286e4f1b-eed1-4e55-a849-f4159fdb2638');
    assert.equal(decodeParams('DumpInternalState', null), '');
    assert.equal(decodeParams('CommitsById', ['abc']), 'abc');
  });

  it('retries a 1-element array with its element', () => {
    assert.deepEqual(decodeParams('Create', [{ Namespace: 'admin', Name: 'foo' }]), { Namespace: 'admin', Name: 'foo' });
  });

  it('gives clear errors for wrong types', () => {
    invalid(
      () => decodeParams('Commit', { Metadata: { a: 1 } }),
      'DotmeshRPC.Commit: field "Metadata" must be an object of strings',
    );
    invalid(() => decodeParams('Commit', { Metadata: 'x' }), 'DotmeshRPC.Commit: field "Metadata" must be an object of strings');
    invalid(() => decodeParams('Create', { Name: 5 }), 'DotmeshRPC.Create: field "Name" must be a string');
    invalid(() => decodeParams('Create', 'foo'), 'DotmeshRPC.Create: params must be an object');
    invalid(() => decodeParams('Get', { Id: 'x' }), 'DotmeshRPC.Get: params must be a string');
    invalid(() => decodeParams('Create', [1, 2]), 'DotmeshRPC.Create: params must be an object');
  });

  it('refuses oversized strings and metadata', () => {
    invalid(() => decodeParams('Create', { Name: 'x'.repeat(64 * 1024 + 1) }), /field "Name" must be at most 65536 bytes/);
    invalid(() => decodeParams('Get', 'é'.repeat(40000)), /params must be at most 65536 bytes/);
    invalid(() => decodeParams('Commit', { Message: 'm'.repeat(64 * 1024 + 1) }), /field "Message" must be at most/);
    invalid(() => decodeParams('Commit', { Metadata: { a: 'v'.repeat(64 * 1024 + 1) } }), /field "Metadata" must have values/);
    const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, 'v']));
    invalid(() => decodeParams('Commit', { Metadata: many }), /field "Metadata" must have at most 256 entries/);
    assert.equal(decodeParams('Commit', { Metadata: { big: 'v'.repeat(2000) } }).Metadata.big?.length, 2000);
  });

  it('knows admin-only methods and wire names', () => {
    assert.equal(METHODS.Rollback.admin, true);
    assert.equal(METHODS.Commit.admin, false);
    assert.equal(methodFromWire('DotmeshRPC.Commit'), 'Commit');
    assert.equal(methodFromWire('DotmeshRPC.toString'), null);
    assert.equal(methodFromWire('Other.Commit'), null);
  });
});
