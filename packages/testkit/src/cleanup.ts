/**
 * A LIFO stack of cleanup steps. `run()` runs every step, newest first, even when some throw,
 * then throws one error naming every failure (an AggregateError when more than one failed).
 * Steps added while `run()` is in progress run too. Running twice is harmless: each step runs
 * at most once.
 */
export type CleanupStep = () => unknown;

interface Entry {
  readonly name: string;
  readonly fn: CleanupStep;
}

export class Cleanup {
  readonly #steps: Entry[] = [];

  /** Registers a step; `name` appears in the error if the step fails. */
  add(fn: CleanupStep, name = fn.name || `step ${this.#steps.length + 1}`): void {
    this.#steps.push({ name, fn });
  }

  /** Number of steps not yet run. */
  get size(): number {
    return this.#steps.length;
  }

  async run(): Promise<void> {
    const failures: Error[] = [];
    for (let entry = this.#steps.pop(); entry !== undefined; entry = this.#steps.pop()) {
      try {
        await entry.fn();
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        failures.push(new Error(`cleanup step "${entry.name}" failed: ${err.message}`, { cause: err }));
      }
    }
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) throw new AggregateError(failures, `${failures.length} cleanup steps failed`);
  }

  /** Lets `await using c = new Cleanup()` run the steps at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.run();
  }
}

/** The part of node:test's TestContext (or SuiteContext) that `cleanupFor` needs. */
export interface AfterHook {
  after(fn: () => unknown): void;
}

/** A Cleanup that runs when the test `t` ends: `const c = cleanupFor(t); c.add(...)`. */
export function cleanupFor(t: AfterHook): Cleanup {
  const c = new Cleanup();
  t.after(() => c.run());
  return c;
}
