import { DotmeshError } from '@dotmesh/core';
import type { Compare, TxnOp, TxnRequest } from '../store.ts';

/** Largest key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 4 * 1024;
/** Largest value, in UTF-8 bytes. */
export const MAX_VALUE_BYTES = 4 * 1024 * 1024;
/** Longest lease TTL (etcd's MaxLeaseTTL). */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;

/**
 * Argument checks shared by every Store implementation, so each rejects the same inputs
 * with the same INVALID_ARGUMENT messages. All throw; none has side effects.
 */
export function checkKey(key: unknown, what = 'key'): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) invalid(`${what} must be a non-empty string`);
  checkText(key, what, MAX_KEY_BYTES);
}

/** A prefix may be empty (= every key). */
export function checkPrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string') invalid('prefix must be a string');
  checkText(prefix, 'prefix', MAX_KEY_BYTES);
}

export function checkValue(key: string, value: unknown): asserts value is string {
  if (typeof value !== 'string') invalid(`value of key ${quote(key)} must be a string`);
  checkText(value, `value of key ${quote(key)}`, MAX_VALUE_BYTES);
}

export function checkTtl(ttlSeconds: unknown): asserts ttlSeconds is number {
  if (!Number.isSafeInteger(ttlSeconds) || (ttlSeconds as number) < 1 || (ttlSeconds as number) > MAX_LEASE_TTL_SECONDS) {
    invalid(`lease TTL must be a whole number of seconds from 1 to ${MAX_LEASE_TTL_SECONDS}, got ${String(ttlSeconds)}`);
  }
}

export function checkLeaseId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.length === 0 || id.length > 64) invalid('lease id must be a non-empty string');
}

export function checkRevision(revision: unknown, what: string): asserts revision is number {
  if (!Number.isSafeInteger(revision) || (revision as number) < 0) {
    invalid(`${what} must be a non-negative integer, got ${String(revision)}`);
  }
}

/** Checks both branches up front, so a bad request fails whatever the compares say. */
export function checkTxn(request: TxnRequest): void {
  if (request === null || typeof request !== 'object' || !Array.isArray(request.compare) || !Array.isArray(request.success)) {
    invalid('txn needs a compare array and a success array');
  }
  for (const c of request.compare) checkCompare(c);
  checkBranch(request.success, 'success');
  if (request.failure !== undefined) {
    if (!Array.isArray(request.failure)) invalid('txn failure must be an array');
    checkBranch(request.failure, 'failure');
  }
}

function checkCompare(c: Compare): void {
  checkKey(c?.key, 'compare key');
  if (!['==', '!=', '<', '>'].includes(c.op)) invalid(`compare on ${quote(c.key)}: unknown op ${String(c.op)}`);
  if (c.target === 'value') {
    if (typeof c.value !== 'string') invalid(`compare on ${quote(c.key)}: a value compare needs a string`);
  } else if (c.target === 'version' || c.target === 'createRevision' || c.target === 'modRevision') {
    if (!Number.isSafeInteger(c.value)) invalid(`compare on ${quote(c.key)}: a ${c.target} compare needs an integer`);
  } else {
    invalid(`compare on ${quote(c.key)}: unknown target ${String(c.target)}`);
  }
}

/** etcd's rule: a key is put at most once per branch, and never both put and deleted. */
function checkBranch(ops: readonly TxnOp[], branch: string): void {
  const puts = new Set<string>();
  const deletes: string[] = [];
  const prefixes: string[] = [];
  for (const op of ops) {
    switch (op?.type) {
      case 'put':
        checkKey(op.key);
        checkValue(op.key, op.value);
        if (op.lease !== undefined) checkLeaseId(op.lease);
        if (puts.has(op.key)) invalid(`txn ${branch} puts key ${quote(op.key)} twice`);
        puts.add(op.key);
        break;
      case 'delete':
        checkKey(op.key);
        deletes.push(op.key);
        break;
      case 'deletePrefix':
        checkPrefix(op.prefix);
        prefixes.push(op.prefix);
        break;
      case 'get':
        checkKey(op.key);
        break;
      default:
        invalid(`txn ${branch} has an op of unknown type ${String((op as { type?: unknown })?.type)}`);
    }
  }
  for (const key of puts) {
    if (deletes.includes(key) || prefixes.some((p) => key.startsWith(p))) {
      invalid(`txn ${branch} both puts and deletes key ${quote(key)}`);
    }
  }
}

function checkText(text: string, what: string, maxBytes: number): void {
  if (!text.isWellFormed()) invalid(`${what} is not well-formed Unicode (lone surrogate)`);
  // Cheap upper bound first: a UTF-16 unit never takes more than 3 UTF-8 bytes.
  if (text.length * 3 <= maxBytes) return;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) invalid(`${what} is ${bytes} bytes, more than the limit of ${maxBytes}`);
}

function quote(key: string): string {
  return JSON.stringify(key.length > 80 ? `${key.slice(0, 77)}...` : key);
}

function invalid(message: string): never {
  throw new DotmeshError('INVALID_ARGUMENT', message);
}
