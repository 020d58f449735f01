import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { DotmeshError } from '@dotmesh/core';

/**
 * A server killed with SIGKILL leaves its running `btrfs` children behind: a snapshot or a
 * receive goes on for a while, writing into the pool. Start-up recovery must not run beside
 * them (it would remove a commit's box while the snapshot lands in it), so `open()` first
 * waits until no `btrfs` process names a path inside the pool. Nothing else runs `btrfs` on
 * a pool's paths: the pool lock keeps other servers away.
 */
export interface OrphanWaitOptions {
  readonly timeoutMs: number;
  readonly pollMs?: number;
  readonly procDir?: string;
}

/** Pids of `btrfs` processes whose arguments name `root` or a path below it. */
export async function btrfsProcessesOn(root: string, procDir = '/proc'): Promise<number[]> {
  const prefix = root.endsWith('/') ? root : `${root}/`;
  const pids: number[] = [];
  for (const entry of await readdir(procDir).catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = (await readFile(`${procDir}/${entry}/comm`, 'utf8').catch(() => '')).trim();
    if (comm !== 'btrfs') continue;
    const argv = (await readFile(`${procDir}/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv.some((a) => a === root || a.startsWith(prefix))) pids.push(Number(entry));
  }
  return pids;
}

/** Resolves once no `btrfs` process works on the pool; UNAVAILABLE after `timeoutMs`. */
export async function waitForOrphans(root: string, o: OrphanWaitOptions, onWait?: (pids: number[]) => void): Promise<void> {
  const deadline = Date.now() + o.timeoutMs;
  let told = false;
  for (;;) {
    const pids = await btrfsProcessesOn(root, o.procDir);
    if (pids.length === 0) return;
    if (!told) onWait?.(pids);
    told = true;
    if (Date.now() >= deadline) {
      throw new DotmeshError('UNAVAILABLE', `btrfs processes still work on the pool at ${root}: ${pids.join(', ')}`, {
        hint: 'they were started by an earlier dotmesh-server; wait for them to end (or stop them), then start again',
        data: { pids },
      });
    }
    await sleep(o.pollMs ?? 100);
  }
}
