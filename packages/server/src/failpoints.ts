import { DotmeshError } from '@dotmesh/core';

/**
 * Named failpoints between the steps of every multi-step mutation. A test arms one with
 * `SetDebugFlag{FlagName: "<failpoint>", FlagValue: "error"|"crash"|"off"}`:
 * - "error": the operation stops there with "Injected fault at <failpoint>" (the state on disk is
 *   whatever the earlier steps left, exactly as after a crash, but the server lives on);
 * - "crash": the process kills itself with SIGKILL at that point.
 * A failpoint fires once, then disarms itself.
 */
export const FAILPOINTS = {
  create: ['create.after-volume', 'create.after-initial-commit', 'create.after-store'],
  commit: ['commit.after-snapshot', 'commit.after-store'],
  branch: ['branch.after-volume', 'branch.after-store'],
  rollback: ['rollback.after-intent', 'rollback.after-store', 'rollback.after-swap', 'rollback.after-label', 'rollback.after-gc'],
  delete: ['delete.after-intent', 'delete.after-store', 'delete.after-branches'],
  /** Deleting one branch (dots/delete-branch.ts): `after-label` and `after-swap` when it is retired. */
  deleteBranch: ['delete-branch.after-label', 'delete-branch.after-store', 'delete-branch.after-swap'],
  /** Deleting one commit (dots/delete-commit.ts). */
  deleteCommit: ['delete-commit.after-label', 'delete-commit.after-store'],
  receive: ['receive.after-intent', 'receive.after-import', 'receive.after-label'],
  stash: ['stash.after-branch', 'stash.after-label'],
  /** On the master handing a branch to another node (cluster/handoff.ts). */
  handoff: ['handoff.after-commit', 'handoff.after-send', 'handoff.after-move'],
  /** On the node a branch was handed to, taking it over (cluster/handoff.ts activateBranch). */
  takeover: ['takeover.after-store', 'takeover.after-swap'],
  /** Between two commits of a transfer, on the initiating server. */
  transfer: ['transfer.after-commit'],
  /** Not a stop: the next exported commit stream gets one byte flipped after its checksum. */
  corrupt: ['transfer.corrupt-stream'],
} as const;

export type FailpointName = (typeof FAILPOINTS)[keyof typeof FAILPOINTS][number];
export const ALL_FAILPOINTS: readonly string[] = Object.values(FAILPOINTS).flat();

/** The original's flags, mapped onto our failpoints (value "true" = error, "false" = off). */
const LEGACY_FLAGS: Record<string, FailpointName> = {
  PartialFailCreateFilesystem: 'create.after-volume',
  PartialFailDelete: 'delete.after-intent',
};

export type FailpointMode = 'off' | 'error' | 'crash';

export class Failpoints {
  readonly #armed = new Map<string, FailpointMode>();
  readonly #crash: () => never;

  constructor(crash: () => never = () => process.kill(process.pid, 'SIGKILL') as never) {
    this.#crash = crash;
  }

  /** Sets a flag; returns the previous value as the original's SetDebugFlag does. */
  set(flag: string, value: string): string {
    const legacy = LEGACY_FLAGS[flag];
    const name = legacy ?? flag;
    if (!ALL_FAILPOINTS.includes(name)) {
      throw new DotmeshError('INVALID_ARGUMENT', `Unknown debug flag ${flag.slice(0, 100)}`, {
        hint: `known flags: ${[...Object.keys(LEGACY_FLAGS), ...ALL_FAILPOINTS].join(', ')}`,
      });
    }
    const mode: FailpointMode | undefined = legacy
      ? value === 'true'
        ? 'error'
        : value === 'false'
          ? 'off'
          : undefined
      : value === 'error' || value === 'crash' || value === 'off'
        ? value
        : undefined;
    if (mode === undefined) {
      throw new DotmeshError('INVALID_ARGUMENT', `Invalid value ${JSON.stringify(value.slice(0, 100))} for debug flag ${flag}`, {
        hint: legacy ? 'use "true" or "false"' : 'use "error", "crash" or "off"',
      });
    }
    const previous = this.#armed.get(name) ?? 'off';
    if (mode === 'off') this.#armed.delete(name);
    else this.#armed.set(name, mode);
    return legacy ? String(previous !== 'off') : previous;
  }

  /** For failpoints that alter data rather than stop: true once when armed (any mode). */
  take(name: FailpointName): boolean {
    return this.#armed.delete(name);
  }

  /** Called between steps. Throws (or crashes) when armed; disarms itself. */
  hit(name: FailpointName): void {
    const mode = this.#armed.get(name);
    if (mode === undefined) return;
    this.#armed.delete(name);
    if (mode === 'crash') this.#crash();
    throw new DotmeshError('INJECTED_FAULT', `Injected fault at ${name}`, {
      hint: 'a test armed this failpoint with SetDebugFlag',
    });
  }
}
