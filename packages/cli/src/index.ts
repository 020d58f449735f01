/** @dotmesh/cli: the `dm` client. `main` runs one command in-process; bin.ts is the executable (run.ts what it runs). */

export type { Io } from './io.ts';
export { processIo } from './io.ts';
export { type Env, type MainOptions, main } from './main.ts';
