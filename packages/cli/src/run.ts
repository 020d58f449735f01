#!/usr/bin/env node
/** The `dm` executable: the only place that reads process.argv/env and sets the exit status. */
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
