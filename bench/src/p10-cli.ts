import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { atMost, msSince, summarize, timeMs } from './harness.ts';
import type { Row } from './report.ts';
import type { BenchServer } from './server.ts';

/**
 * P10: `dm` commands end to end against the running server (the built bundle, run by this
 * Node as the installed wrapper runs it), against Node's floor `node -e ''`; and the time from
 * spawning `dm` to its first request reaching the server, against a bare `node -e` that sends
 * one request. That second figure is measured through a recording proxy in this process that
 * forwards every request to the real server. Target: ≤ floor + 40 ms of overhead; the verdict
 * is given for both readings (whole command, and before the first request). `dm` keeps Node's
 * compile cache in its HOME's ~/.cache (bin.ts): the warm-up run fills it, as a user's first
 * command does; one more row measures `dm version` with the cache turned off.
 */
export const P10_SLACK_MS = 40;

/** Runs `node <args>` with HOME = `home` (and `env`); resolves when it exits 0, rejects otherwise. */
export function runNode(args: readonly string[], home: string, env: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      args,
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...env } },
      (err, _out, stderr) =>
        err ? reject(new Error(`node ${args.join(' ')} failed: ${stderr.trim() || err.message}`)) : resolve(),
    );
  });
}

export async function benchCli(s: BenchServer, dmBundle: string, samples: number): Promise<Row[]> {
  const floor: number[] = [];
  const version: number[] = [];
  const list: number[] = [];
  const uncached: number[] = [];
  await runNode([dmBundle, 'version'], s.dmHome); // warm the page cache and dm's compile cache
  for (let i = 0; i < samples; i++) {
    floor.push(await timeMs(() => runNode(['-e', ''], s.dmHome)));
    version.push(await timeMs(() => runNode([dmBundle, 'version'], s.dmHome)));
    list.push(await timeMs(() => runNode([dmBundle, 'list'], s.dmHome)));
    uncached.push(await timeMs(() => runNode([dmBundle, 'version'], s.dmHome, { NODE_DISABLE_COMPILE_CACHE: '1' })));
  }
  const first = await firstRequestTimes(s, dmBundle, samples);
  const floorStats = summarize(floor);
  /** A row against the floor: judged by the target, or (with `note`) for information. */
  const e2e = (what: string, xs: number[], note?: string): Row => {
    const figure = summarize(xs);
    return {
      id: 'P10',
      what,
      unit: 'ms',
      figure,
      reference: { what: "node -e ''", stats: floorStats },
      diff: figure.p50 - floorStats.p50,
      ...(note !== undefined
        ? { note }
        : { verdict: atMost(`p50 ≤ floor + ${P10_SLACK_MS} ms`, figure.p50, floorStats.p50 + P10_SLACK_MS, 'ms') }),
    };
  };
  const dmFirst = summarize(first.dm);
  const bareFirst = summarize(first.bare);
  return [
    e2e('dm version end to end', version),
    e2e('dm list end to end', list),
    e2e(
      "dm version end to end without dm's compile cache (its first run)",
      uncached,
      'informational: every later run reuses the cache (the rows above)',
    ),
    {
      id: 'P10',
      what: 'dm list: spawn → first request at the server',
      unit: 'ms',
      figure: dmFirst,
      reference: { what: 'node -e (one request)', stats: bareFirst },
      diff: dmFirst.p50 - bareFirst.p50,
      verdict: atMost(`p50 ≤ ref + ${P10_SLACK_MS} ms`, dmFirst.p50, bareFirst.p50 + P10_SLACK_MS, 'ms'),
    },
  ];
}

/** Spawn → first request times of `dm list` and of a bare node request, through a proxy. */
async function firstRequestTimes(s: BenchServer, dmBundle: string, samples: number): Promise<{ dm: number[]; bare: number[] }> {
  const target = new URL(s.proc.url);
  let armed: { start: bigint; seen?: number } | undefined;
  const proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (armed && armed.seen === undefined) armed.seen = msSince(armed.start);
    const up = request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  try {
    const port = (proxy.address() as AddressInfo).port;
    const home = join(s.dmHome, '..', 'home-proxy');
    await mkdir(join(home, '.dotmesh'), { recursive: true, mode: 0o700 });
    const config = JSON.parse(await readFile(join(s.dmHome, '.dotmesh', 'config'), 'utf8'));
    config.Remotes.local.Port = port;
    await writeFile(join(home, '.dotmesh', 'config'), JSON.stringify(config), { mode: 0o600 });
    const bareScript = `require('node:http').request('http://127.0.0.1:${port}/rpc',{method:'POST'},(r)=>r.resume()).end('{}')`;
    const once = async (args: string[]) => {
      armed = { start: process.hrtime.bigint() };
      const run = armed;
      await runNode(args, home);
      if (run.seen === undefined) throw new Error(`node ${args.join(' ')} sent no request`);
      return run.seen;
    };
    const dm: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < samples; i++) {
      bare.push(await once(['-e', bareScript]));
      dm.push(await once([dmBundle, 'list']));
    }
    return { dm, bare };
  } finally {
    await new Promise((r) => proxy.close(r));
  }
}
