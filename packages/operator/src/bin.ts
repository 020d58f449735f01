#!/usr/bin/env node
/** The `dotmesh-operator` executable: the only place that reads process.argv, the environment and signals. */
import { main } from './main.ts';

const stopped = new Promise<void>((resolve) => {
  process.once('SIGTERM', () => resolve());
  process.once('SIGINT', () => resolve());
});
process.exitCode = await main(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  stopped,
});
process.exit();
