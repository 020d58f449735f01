/**
 * The timing end of P11 (replication lag) and of the commit-latency-by-durability rows, run
 * inside the master's network namespace (`host.exec`, as rpc-agent.ts) or, for a single-node
 * server on loopback, in the root namespace. Per sample it writes `changeBytes` of fresh random
 * data at a random aligned offset of `file` (the branch's mounted file, uncommitted), then times
 * `Commit` (request → reply) and, with `replicas`, keeps asking each replica node's own index
 * (`DumpInternalState`: the branch's commit count in that node's copy, which counts a commit
 * once the node received it, its files in place) every `pollMs` until every replica holds as
 * many commits as the master after the Commit: `lagMs` is from the Commit's request to the
 * answer that shows the last replica holding it. The next sample starts only then, so samples
 * never queue behind each other. Prints one JSON line per sample: `{"commitMs","lagMs"?}`; a
 * failure prints `{"error"}` (exit 1). `warmup` samples run first, unprinted.
 *
 *   {url,user,apiKey,namespace,name,file,fileBytes,changeBytes,samples,pollMs,warmup,
 *    replicas?:[{url,apiKey}]}
 */
import { randomBytes, randomInt } from 'node:crypto';
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { DotmeshClient } from '@dotmesh/rpc';

interface AgentInput {
  readonly url: string;
  readonly user: string;
  readonly apiKey: string;
  readonly namespace: string;
  readonly name: string;
  readonly file: string;
  readonly fileBytes: number;
  readonly changeBytes: number;
  readonly samples: number;
  readonly replicas?: readonly { readonly url: string; readonly apiKey: string }[];
  readonly pollMs: number;
  readonly warmup: number;
}

const input = JSON.parse(process.argv[2] ?? '{}') as AgentInput;
const client = (url: string, apiKey: string) => new DotmeshClient({ url, user: input.user, apiKey, timeoutMs: 600_000 });
const rpc = client(input.url, input.apiKey);
const replicas = (input.replicas ?? []).map((r) => client(r.url, r.apiKey));
const print = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const dot = { Namespace: input.namespace, Name: input.name, Branch: '' };

async function change(): Promise<void> {
  const blocks = Math.max(1, Math.floor(input.fileBytes / input.changeBytes));
  const fh = await open(input.file, 'r+');
  try {
    await fh.write(randomBytes(input.changeBytes), 0, input.changeBytes, randomInt(blocks) * input.changeBytes);
  } finally {
    await fh.close();
  }
}

/** The number of commits `node`'s own copy of branch `fsId` holds (0 when it has none yet). */
async function commitsOn(node: DotmeshClient, fsId: string): Promise<number> {
  const state = (await node.call('DumpInternalState', '.branches.')) as Record<string, string>;
  const idKey = Object.keys(state).find((k) => k.endsWith('.id') && state[k] === fsId);
  return idKey === undefined ? 0 : Number(state[`${idKey.slice(0, -'.id'.length)}.commits`] ?? 0);
}

async function sample(fsId: string): Promise<{ commitMs: number; lagMs?: number }> {
  await change();
  const start = process.hrtime.bigint();
  await rpc.call('Commit', { ...dot, Message: 'bench', Metadata: {} });
  const commitMs = ms(start);
  if (replicas.length === 0) return { commitMs };
  const want = await commitsOn(rpc, fsId);
  let waiting = replicas;
  while (waiting.length > 0) {
    const held = await Promise.all(waiting.map((r) => commitsOn(r, fsId)));
    waiting = waiting.filter((_, i) => held[i]! < want);
    if (waiting.length > 0) await sleep(input.pollMs);
  }
  return { commitMs, lagMs: ms(start) };
}

try {
  const fsId = String(await rpc.call('Lookup', dot));
  for (let i = 0; i < input.warmup; i++) await sample(fsId);
  for (let i = 0; i < input.samples; i++) print(await sample(fsId));
} catch (e) {
  print({ error: (e as Error).message });
  process.exitCode = 1;
}
