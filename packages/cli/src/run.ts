/**
 * What the `dm` executable runs once bin.ts has set up Node: the only place that reads
 * process.argv/env and sets the exit status.
 */
import { processIo } from './io.ts';
import { main } from './main.ts';

// `dm … | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

process.exitCode = await main(process.argv.slice(2), process.env, processIo(), {
  runtime: { scriptPath: process.argv[1], nodePath: process.execPath },
});
// main has awaited all its work, and stdout and stderr are synchronous on Linux (files, pipes
// and terminals alike): exiting now skips only the teardown of Node's heap, a few ms of every
// start (P10). Node writes its compile cache on this path too.
process.exit();
