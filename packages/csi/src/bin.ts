#!/usr/bin/env node
/** The `dotmesh-csi` executable: the only place that reads process.argv and signals. */
import { main } from './main.ts';

const stopped = new Promise<void>((resolve) => {
  process.once('SIGTERM', () => resolve());
  process.once('SIGINT', () => resolve());
});
process.exitCode = await main(process.argv.slice(2), { stderr: (line) => process.stderr.write(`${line}\n`), stopped }, '0.1.0');
process.exit();
