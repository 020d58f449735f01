import { readdir, readFile, readlink } from 'node:fs/promises';

/**
 * Finds what holds a directory tree busy: processes whose cwd, root or open files are
 * inside it, and mounts below it. Rollback and checkout refuse while anything Dotmesh cannot
 * stop uses the live state, because swapping it would leave them on the old data.
 */
export interface InUseReport {
  readonly processes: ReadonlyArray<{ pid: number; command: string }>;
  readonly mounts: readonly string[];
}

export interface InUseChecker {
  check(path: string): Promise<InUseReport>;
}

function inside(target: string, root: string): boolean {
  return target === root || target.startsWith(`${root}/`);
}

export class ProcInUseChecker implements InUseChecker {
  readonly #proc: string;
  readonly #selfPid: number;

  constructor(options: { procDir?: string; selfPid?: number } = {}) {
    this.#proc = options.procDir ?? '/proc';
    this.#selfPid = options.selfPid ?? process.pid;
  }

  async check(path: string): Promise<InUseReport> {
    const processes: Array<{ pid: number; command: string }> = [];
    const entries = await readdir(this.#proc).catch(() => [] as string[]);
    for (const entry of entries) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      if (pid === this.#selfPid) continue;
      if (await this.#processUses(pid, path)) {
        const command = (await readFile(`${this.#proc}/${pid}/comm`, 'utf8').catch(() => '?')).trim();
        processes.push({ pid, command });
      }
    }
    const mountinfo = await readFile(`${this.#proc}/self/mountinfo`, 'utf8').catch(() => '');
    const mounts = mountinfo
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .map((p) => p.replace(/\\040/g, ' '))
      .filter((p) => p !== '' && inside(p, path));
    return { processes, mounts };
  }

  async #processUses(pid: number, path: string): Promise<boolean> {
    const base = `${this.#proc}/${pid}`;
    for (const link of ['cwd', 'root']) {
      const target = await readlink(`${base}/${link}`).catch(() => '');
      if (target !== '' && inside(target, path)) return true;
    }
    const fds = await readdir(`${base}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`${base}/fd/${fd}`).catch(() => '');
      if (target !== '' && inside(target, path)) return true;
    }
    return false;
  }
}

/** For drivers without host paths (the in-memory driver). */
export const NEVER_IN_USE: InUseChecker = { check: async () => ({ processes: [], mounts: [] }) };
