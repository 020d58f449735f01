import type { ICompare, IRequestOp, ITxnRequest, ITxnResponse } from 'etcd3';
import type { Compare, KeyValue, TxnOp, TxnRequest, TxnResult } from '../store.ts';
import { type KeyCodec, leaseToEtcd } from './codec.ts';

const RESULTS = { '==': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' } as const;

/**
 * Builds etcd's TxnRequest from a validated Store TxnRequest (checkTxn has run). etcd applies
 * the same rules the contract states: a missing key has version/createRevision/modRevision
 * 0 and fails every value compare; a branch's ops run in order.
 */
export function toEtcdTxn(codec: KeyCodec, request: TxnRequest): ITxnRequest {
  return {
    compare: request.compare.map((c) => toCompare(codec, c)),
    success: request.success.map((op) => toRequestOp(codec, op)),
    failure: (request.failure ?? []).map((op) => toRequestOp(codec, op)),
  };
}

function toCompare(codec: KeyCodec, c: Compare): ICompare {
  const base = { key: codec.encode(c.key), result: RESULTS[c.op] };
  switch (c.target) {
    case 'value':
      return { ...base, target: 'Value', value: Buffer.from(c.value as string, 'utf8') };
    case 'version':
      return { ...base, target: 'Version', version: c.value as number };
    case 'createRevision':
      return { ...base, target: 'Create', create_revision: c.value as number };
    case 'modRevision':
      return { ...base, target: 'Mod', mod_revision: c.value as number };
  }
}

/** A put whose lease cannot name an etcd lease gets lease "-1": etcd then answers "lease not found". */
function toRequestOp(codec: KeyCodec, op: TxnOp): IRequestOp {
  switch (op.type) {
    case 'put':
      return {
        request_put: {
          key: codec.encode(op.key),
          value: Buffer.from(op.value, 'utf8'),
          ...(op.lease === undefined ? {} : { lease: leaseToEtcd(op.lease) ?? '-1' }),
        },
      };
    case 'delete':
      return { request_delete_range: { key: codec.encode(op.key) } };
    case 'deletePrefix':
      return { request_delete_range: codec.range(op.prefix) };
    case 'get':
      return { request_range: { key: codec.encode(op.key) } };
  }
}

/** The Store result: the gets of the applied branch, in order, from etcd's per-op responses. */
export function fromEtcdTxn(codec: KeyCodec, request: TxnRequest, response: ITxnResponse): TxnResult {
  const ops = response.succeeded ? request.success : (request.failure ?? []);
  const gets: (KeyValue | undefined)[] = [];
  ops.forEach((op, i) => {
    if (op.type !== 'get') return;
    const kv = response.responses[i]?.response_range?.kvs[0];
    gets.push(kv === undefined ? undefined : codec.keyValue(kv));
  });
  return { succeeded: response.succeeded, revision: Number(response.header.revision), gets };
}

/** Every lease a request's puts name (for the "lease not found" message). */
export function leasesOf(request: TxnRequest): string[] {
  return [...request.success, ...(request.failure ?? [])].flatMap((op) =>
    op.type === 'put' && op.lease !== undefined ? [op.lease] : [],
  );
}
