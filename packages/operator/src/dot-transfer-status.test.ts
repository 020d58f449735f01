import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TransferPollResult } from '@dotmesh/rpc';
import { statusPatch } from './custom-objects.ts';
import { failedStatus, isFinished, statusFromPoll } from './dot-transfer-status.ts';

const now = new Date('2026-12-06T17:00:00Z');
const base = { transferId: 'tid', node: 'node-1', startTime: '2026-12-06T16:59:00Z' };
const poll = (o: Partial<TransferPollResult>): TransferPollResult =>
  ({
    TransferRequestId: 'tid',
    Index: 0,
    Total: 0,
    Size: 0,
    Sent: 0,
    Status: 'starting',
    Message: '',
    Error: null,
    ...o,
  }) as TransferPollResult;

test('a running transfer: progress in commits and bytes, no error yet', () => {
  const s = statusFromPoll(poll({ Status: 'pushing', Index: 1, Total: 3, Sent: 100, Size: 300 }), base, 'SECRETKEY', now);
  assert.deepEqual(s, {
    ...base,
    phase: 'Running',
    state: 'pushing',
    progress: '1/3 commits, 100/300 bytes',
    commitsSent: 1,
    commitsTotal: 3,
    bytesSent: 100,
    bytesTotal: 300,
    retries: 0,
  });
  assert.equal(isFinished(s), false);
});

test('retries and the structured error, redacted of the key; finished only with every commit', () => {
  const retrying = statusFromPoll(
    poll({
      Status: 'retry 2',
      Index: 1,
      Total: 3,
      Error: { code: 'UNAVAILABLE', message: 'peer SECRETKEY down', hint: 'check SECRETKEY', data: null },
    }),
    base,
    'SECRETKEY',
    now,
  );
  assert.equal(retrying.phase, 'Running');
  assert.equal(retrying.retries, 2);
  assert.deepEqual(retrying.error, { code: 'UNAVAILABLE', message: 'peer <redacted> down', hint: 'check <redacted>' });
  const failed = statusFromPoll(
    poll({ Status: 'error', Message: 'diverged', Error: { code: 'DIVERGED', message: 'diverged', hint: 'stash', data: null } }),
    base,
    'SECRETKEY',
    now,
  );
  assert.equal(failed.phase, 'Failed');
  assert.equal(failed.error?.code, 'DIVERGED');
  assert.equal(failed.completionTime, now.toISOString());
  const done = statusFromPoll(poll({ Status: 'finished', Index: 3, Total: 3, Sent: 300, Size: 300 }), base, 'SECRETKEY', now);
  assert.equal(done.phase, 'Completed');
  assert.equal(done.error, undefined);
  assert.equal(statusFromPoll(poll({ Status: 'finished', Index: 2, Total: 3 }), base, 'SECRETKEY', now).phase, 'Running');
});

test('a transfer refused before it started', () => {
  const s = failedStatus({ code: 'INVALID_ARGUMENT', message: 'no Secret', hint: 'make it' }, '', now);
  assert.deepEqual(s, {
    phase: 'Failed',
    message: 'no Secret',
    error: { code: 'INVALID_ARGUMENT', message: 'no Secret', hint: 'make it' },
    completionTime: now.toISOString(),
  });
  assert.equal(isFinished(s), true);
  assert.equal(isFinished(undefined), false);
});

test('a status patch removes what the new status no longer has, field by field', () => {
  assert.deepEqual(
    statusPatch(
      { phase: 'Pending', error: { code: 'UNAVAILABLE', message: 'm', hint: 'h' }, retries: 1 },
      { phase: 'Running', error: { code: 'X', message: 'n' } },
    ),
    { phase: 'Running', error: { code: 'X', message: 'n', hint: null }, retries: null },
  );
  assert.deepEqual(statusPatch(undefined, { branches: [{ name: 'a' }] }), { branches: [{ name: 'a' }] });
});
