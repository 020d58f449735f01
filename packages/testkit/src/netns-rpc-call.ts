/**
 * Run by `NetnsClient` inside a host's network namespace: makes one RPC call with the real
 * client and prints `{"ok":true,"result":...}` or `{"ok":false,"code":...,"message":...}`.
 * Usage: node netns-rpc-call.ts '<json {url,user,apiKey,method,params,timeoutMs}>'
 */
import { DotmeshClient } from '@dotmesh/rpc';

interface Request {
  readonly url: string;
  readonly user: string;
  readonly apiKey: string;
  readonly method: string;
  readonly params: unknown;
  readonly timeoutMs?: number;
}

const req = JSON.parse(process.argv[2] ?? '{}') as Request;
const client = new DotmeshClient({ url: req.url, user: req.user, apiKey: req.apiKey });
try {
  const result = await client.callRaw(req.method, req.params, req.timeoutMs === undefined ? {} : { timeoutMs: req.timeoutMs });
  process.stdout.write(JSON.stringify({ ok: true, result }));
} catch (e) {
  const err = e as { code?: unknown; message?: string; hint?: string; data?: unknown };
  process.stdout.write(JSON.stringify({ ok: false, code: err.code, message: err.message, hint: err.hint, data: err.data }));
}
