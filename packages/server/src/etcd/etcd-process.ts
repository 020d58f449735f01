import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { DotmeshError } from '@dotmesh/core';
import type { Logger } from '../log.ts';

/** How one managed etcd member is run: its binary, flags, log file, pid file and data dir. */
export interface EtcdProcessSpec {
  readonly bin: string;
  readonly args: readonly string[];
  readonly dataDir: string;
  readonly logFile: string;
  readonly pidFile: string;
}

const STOP_GRACE_MS = 10_000;
const RESTART_DELAYS_MS = [500, 1000, 2000, 5000, 10_000];

/**
 * Supervises a managed etcd member, a child of dotmesh-server: started before the server opens
 * the store, stopped (SIGTERM, SIGKILL after 10 s) after it closed it. Its output goes to
 * `logFile`, its pid to `pidFile`. An exit nobody asked for is logged at error level with its
 * code or signal and the tail of etcd's log, and the member is started again (after 0.5 s,
 * growing to 10 s for exits in a row), unless etcd said it exits because the cluster removed
 * this member (`dm cluster remove-node`): then it is not started again, the log says so, and
 * the `onRemoved` listeners run. A member left running by a server killed with -9 is stopped
 * first (found by the pid file, checked to be an etcd on this data dir).
 */
export class EtcdProcess {
  readonly #spec: EtcdProcessSpec;
  readonly #logger: Logger;
  #child: ChildProcess | undefined;
  #stopping = false;
  /** Exits in a row since the member last answered (the restart back-off). */
  #streak = 0;
  #crashes = 0;
  /** Where the current run's output starts in the log file. */
  #logOffset = 0;
  #removed = false;
  readonly #removedListeners: (() => void)[] = [];

  constructor(spec: EtcdProcessSpec, logger: Logger) {
    this.#spec = spec;
    this.#logger = logger;
  }

  /** Exits nobody asked for since the start (seen by the supervisor). */
  get crashes(): number {
    return this.#crashes;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The cluster removed this member: it is not started again. */
  get removed(): boolean {
    return this.#removed;
  }

  /** Runs `listener` once this member is seen removed from the cluster. */
  onRemoved(listener: () => void): void {
    this.#removedListeners.push(listener);
  }

  async start(): Promise<void> {
    await stopLeftover(this.#spec, this.#logger);
    await this.#spawn();
  }

  async #spawn(): Promise<void> {
    this.#logOffset = await stat(this.#spec.logFile).then(
      (s) => s.size,
      () => 0,
    );
    const log = await open(this.#spec.logFile, 'a', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(this.#spec.bin, [...this.#spec.args], {
        stdio: ['ignore', log.fd, log.fd],
        // No ETCD_* variable of the server's environment changes the member's flags.
        env: {},
      });
      await Promise.race([
        once(child, 'spawn'),
        once(child, 'error').then(([e]) => {
          throw new DotmeshError('UNAVAILABLE', `cannot run etcd ${this.#spec.bin}: ${(e as Error).message}`, {
            hint: 'install etcd 3.4 or later (Debian: apt-get install etcd-server), or give its path with dm cluster init --etcd-bin',
          });
        }),
      ]);
    } finally {
      await log.close();
    }
    this.#child = child;
    await writeFile(this.#spec.pidFile, `${child.pid}\n`, { mode: 0o644 });
    this.#logger.info({ pid: child.pid, bin: this.#spec.bin, dataDir: this.#spec.dataDir }, 'managed etcd member started');
    child.once('exit', (code, signal) => void this.#exited(child, code, signal));
  }

  async #exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    if (this.#stopping || this.#child !== child) return;
    this.#crashes++;
    const delay = RESTART_DELAYS_MS[Math.min(this.#streak, RESTART_DELAYS_MS.length - 1)]!;
    this.#streak++;
    const thisRun = await readFile(this.#spec.logFile).then(
      (b) => b.subarray(this.#logOffset).toString('utf8'),
      () => '',
    );
    const tail = thisRun.slice(-1500);
    if (saysMemberRemoved(thisRun)) {
      this.#removed = true;
      this.#logger.error(
        { pid: child.pid, code, signal, etcdLog: this.#spec.logFile, tail },
        'the managed etcd member exited because the cluster removed it (dm cluster remove-node): not starting it again; this node uses the remaining members',
      );
      await rm(this.#spec.pidFile, { force: true });
      for (const listener of this.#removedListeners) {
        try {
          listener();
        } catch (err) {
          this.#logger.error({ err }, 'after the etcd member was removed');
        }
      }
      return;
    }
    this.#logger.error(
      { pid: child.pid, code, signal, restartInMs: delay, etcdLog: this.#spec.logFile, tail },
      `the managed etcd member exited (${signal ?? `code ${code}`}): starting it again`,
    );
    await sleep(delay);
    if (this.#stopping) return;
    try {
      await this.#spawn();
    } catch (e) {
      this.#logger.error({ err: e }, 'the managed etcd member cannot be started again');
    }
  }

  /** The member runs: resets the back-off of restarts. */
  healthy(): void {
    this.#streak = 0;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = once(child, 'exit');
      child.kill('SIGTERM');
      const killed = await Promise.race([gone.then(() => false), sleep(STOP_GRACE_MS).then(() => true)]);
      if (killed) {
        child.kill('SIGKILL');
        await gone;
      }
      this.#logger.info({ pid: child.pid, killed }, 'managed etcd member stopped');
    }
    await rm(this.#spec.pidFile, { force: true });
  }
}

/**
 * Whether etcd's output says it stopped because the cluster removed its member (its own text,
 * the same in etcd 3.4 to 3.6: "the member has been permanently removed from the cluster").
 */
export function saysMemberRemoved(etcdOutput: string): boolean {
  return /(the|this) member has been permanently removed from the cluster/.test(etcdOutput);
}

/** Whether `pid` runs etcd on `dataDir` (its command line says so). */
export async function isEtcdOn(pid: number, dataDir: string): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  const args = cmdline.split('\0');
  return args.includes(`--data-dir=${dataDir}`) && /etcd/.test(args[0] ?? '');
}

/** Stops the etcd a killed server left running on this data dir (by its pid file); nothing else is signalled. */
export async function stopLeftover(spec: Pick<EtcdProcessSpec, 'pidFile' | 'dataDir'>, logger?: Logger): Promise<boolean> {
  const pid = Number.parseInt(await readFile(spec.pidFile, 'utf8').catch(() => ''), 10);
  if (!Number.isInteger(pid) || pid <= 0 || !(await isEtcdOn(pid, spec.dataDir))) {
    await rm(spec.pidFile, { force: true });
    return false;
  }
  logger?.warn({ pid }, 'stopping the managed etcd member a previous server left running');
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  process.kill(pid, 'SIGTERM');
  for (let waited = 0; alive() && waited < STOP_GRACE_MS; waited += 100) await sleep(100);
  if (alive()) process.kill(pid, 'SIGKILL');
  while (alive()) await sleep(50);
  await rm(spec.pidFile, { force: true });
  return true;
}
