import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AnswerReader, switchingProtocols } from './stream-protocol.ts';

describe("AnswerReader: what a push's client reads after the 101", () => {
  test('keep-alives, the go byte, then the answer (split anywhere)', () => {
    const gone: string[] = [];
    const r = new AnswerReader((line) => gone.push(line));
    for (const part of ['  ', ' \n ', '{"o', 'k":true}']) r.feed(Buffer.from(part));
    assert.deepEqual(gone, ['']);
    assert.deepEqual(r.answer(), { ok: true });
  });

  test('line mode: keep-alives, one line given without its newline, then the answer', () => {
    const gone: string[] = [];
    const r = new AnswerReader((line) => gone.push(line), { line: true });
    for (const part of [' ', 'ab12', '3:ff', '\n  ', '{"ok":true}']) r.feed(Buffer.from(part));
    assert.deepEqual(gone, ['ab123:ff']);
    assert.deepEqual(r.answer(), { ok: true });
  });

  test('line mode: an answer without a line (the stream was not wanted) is read as such', () => {
    const gone: string[] = [];
    const r = new AnswerReader((line) => gone.push(line), { line: true });
    r.feed(Buffer.from('  {"error":{"code":"X","message":"m"}}'));
    assert.deepEqual(gone, []);
    assert.deepEqual(r.answer(), { error: { code: 'X', message: 'm' } });
  });

  test('protocol errors: a bare go byte in line mode, a line in go-byte mode, an oversized line', () => {
    assert.throws(() => new AnswerReader(() => {}, { line: true }).feed(Buffer.from(' \n')), /unexpected byte/);
    assert.throws(() => new AnswerReader(() => {}).feed(Buffer.from('ab:cd\n')), /unexpected byte/);
    assert.throws(() => new AnswerReader(() => {}, { line: true }).feed(Buffer.from(`a${'b'.repeat(300)}`)), /oversized go line/);
  });

  test('the 101 carries the headers it is given', () => {
    assert.equal(
      switchingProtocols({ 'dotmesh-stream-transport': 'tls-pump/1' }),
      'HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: dotmesh-commit-stream/1\r\ndotmesh-stream-transport: tls-pump/1\r\n\r\n',
    );
  });
});
