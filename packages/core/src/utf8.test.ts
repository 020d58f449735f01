import assert from 'node:assert/strict';
import { test } from 'node:test';
import { utf8ByteLength } from './utf8.ts';

test('utf8ByteLength counts what Buffer.byteLength counts, at every encoding length and for lone surrogates', () => {
  const samples = [
    '',
    'a',
    '\0',
    '\u007f',
    '\u0080',
    'é',
    '\u07ff',
    '\u0800',
    '€',
    '\uffff',
    '😀',
    'a😀b€é',
    '\ud800',
    'x\udc00y',
    '\udbff\udfff',
  ];
  for (const s of samples) assert.equal(utf8ByteLength(s), Buffer.byteLength(s, 'utf8'), JSON.stringify(s));
  const long = 'ü'.repeat(40_000);
  assert.equal(utf8ByteLength(long), 80_000);
});
