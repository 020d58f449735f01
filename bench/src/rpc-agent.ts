/**
 * The timing end of P13, run inside a test host's network namespace (`host.exec` of
 * `node rpc-agent.ts <json>`), because the benchmark process lives in the root namespace and
 * must never contact a test address. It makes the given JSON-RPC calls one after another on one
 * client (one keep-alive connection, as a real client does) and prints one JSON line per call:
 * `{"ms":<request → reply>,"result":<the reply, when asked for>}`; a failed call prints
 * `{"ms","error"}` and stops the run (exit 1). Times come from `process.hrtime.bigint()`.
 *
 *   {url,user,apiKey,calls:[{method,params}],results?:boolean,warmup?:number}
 *     warmup: how many times the first call is made, untimed and unprinted, before the run
 *     (so a connection and the server's caches are warm, as for every later call).
 */
import { DotmeshClient, type MethodName } from '@dotmesh/rpc';

interface Call {
  readonly method: MethodName;
  readonly params: unknown;
}
interface AgentInput {
  readonly url: string;
  readonly user: string;
  readonly apiKey: string;
  readonly calls: readonly Call[];
  readonly results?: boolean;
  readonly warmup?: number;
}

const input = JSON.parse(process.argv[2] ?? '{}') as AgentInput;
const rpc = new DotmeshClient({ url: input.url, user: input.user, apiKey: input.apiKey, timeoutMs: 600_000 });
const call = (c: Call) => (rpc.call as (m: MethodName, p: unknown) => Promise<unknown>)(c.method, c.params);
const print = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

const first = input.calls[0];
for (let i = 0; first !== undefined && i < (input.warmup ?? 0); i++) await call(first);
for (const c of input.calls) {
  const start = process.hrtime.bigint();
  try {
    const result = await call(c);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    print(input.results === true ? { ms, result } : { ms });
  } catch (e) {
    print({ ms: Number(process.hrtime.bigint() - start) / 1e6, error: `${c.method}: ${(e as Error).message}` });
    process.exitCode = 1;
    break;
  }
}
