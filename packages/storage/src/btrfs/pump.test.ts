import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExecError } from '../exec.ts';
import { pumpError } from './pump.ts';

/**
 * pumpError: the pump's exit code and its own last stderr line make the error. The command's
 * stderr passes through the same pipe, so a line of btrfs receive may come after the pump's.
 */
const receive = ['btrfs', 'receive', '/pool/staging'];

test("pumpError: the reason is the pump's own line even when the command wrote after it", () => {
  const e = pumpError(
    12,
    'dotmesh-pump: invalid btrfs send stream: stream ends in the middle of a command\nAt subvol c1\n',
    'stream into volume t8',
    receive,
  );
  assert.equal(e.code, 'INVALID_ARGUMENT');
  assert.equal(e.message, 'stream into volume t8 refused: invalid btrfs send stream: stream ends in the middle of a command');
});

test('pumpError: each exit code maps to its error code', () => {
  const cases: [number, string][] = [
    [10, 'TRANSFER_CORRUPT'],
    [11, 'UNAVAILABLE'],
    [12, 'INVALID_ARGUMENT'],
    [14, 'PERMISSION_DENIED'],
  ];
  for (const [exit, code] of cases) {
    const e = pumpError(exit, 'At subvol c1\ndotmesh-pump: why\n', 'the stream', receive);
    assert.equal(e.code, code, `exit ${exit}`);
    assert.equal(e.message.endsWith(': why'), true, e.message);
  }
});

test("pumpError: a failed command is an ExecError of the command, with the command's lines, not the pump's", () => {
  const e = pumpError(
    13,
    'At subvol c1\nERROR: cannot open /pool/staging/c1: No space left\ndotmesh-pump: btrfs failed\n',
    'the stream',
    receive,
  );
  assert.ok(e instanceof ExecError);
  assert.equal(e.cmd, 'btrfs');
  assert.deepEqual(e.args, ['receive', '/pool/staging']);
  assert.equal(e.stderr, 'At subvol c1\nERROR: cannot open /pool/staging/c1: No space left');
});

test('pumpError: without a line of its own (killed), the whole stderr goes into an ExecError of the pump', () => {
  const e = pumpError(null, 'At subvol c1\n', 'the stream', receive);
  assert.ok(e instanceof ExecError);
  assert.equal(e.cmd, 'dotmesh-pump');
});
