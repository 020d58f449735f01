#!/usr/bin/env node
/** The `dotmesh-provisioner` executable: the only place that reads process.argv and signals. */
import { main } from './main.ts';

const stopped = new Promise<void>((resolve) => {
  process.once('SIGTERM', () => resolve());
  process.once('SIGINT', () => resolve());
});
process.exitCode = await main(process.argv.slice(2), { log: (line) => process.stdout.write(`${line}\n`), stopped });
process.exit();
