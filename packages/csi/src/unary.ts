import type { ServerUnaryCall, status as Status, sendUnaryData, UntypedHandleCall } from '@grpc/grpc-js';
import { toGrpcStatus } from './grpc-errors.ts';

/** One line per call: what was asked (never its secrets) and how it ended. */
export type Log = (entry: Record<string, unknown>) => void;

/** Request fields safe to log: ids and paths (never secrets, parameters or contexts). */
const LOGGED_FIELDS = ['name', 'volume_id', 'snapshot_id', 'source_volume_id', 'node_id', 'target_path', 'staging_target_path'];

/**
 * Wraps an async CSI method as a grpc-js handler: the result is sent as the reply, a failure
 * as the gRPC status toGrpcStatus gives it (`overrides` map dotmesh error codes to the codes the
 * spec wants for this call).
 */
export function unary<Req, Res>(
  method: string,
  fn: (req: Req) => Promise<Res>,
  log: Log,
  overrides: Readonly<Record<string, Status>> = {},
): UntypedHandleCall {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    const started = Date.now();
    const fields: Record<string, unknown> = {};
    for (const f of LOGGED_FIELDS) {
      const v = (call.request as Record<string, unknown>)[f];
      if (typeof v === 'string' && v !== '') fields[f] = v.slice(0, 300);
    }
    fn(call.request).then(
      (res) => {
        log({ method, ...fields, ok: true, ms: Date.now() - started });
        callback(null, res);
      },
      (e: unknown) => {
        const s = toGrpcStatus(e, overrides);
        log({ method, ...fields, ok: false, code: s.code, error: s.details, ms: Date.now() - started });
        callback({ code: s.code, details: s.details });
      },
    );
  };
}
