#!/usr/bin/env node
import { dirname } from 'node:path';
import { main } from './main.ts';

const code = await main(process.argv.slice(2), dirname(process.argv[1] ?? '.'), process.env);
// main returns once its command has finished: a server once its stop has (the store closed, its
// etcd member stopped, the pool lock released), a failed start once it has undone what it
// could. What is left behind — a client still reconnecting to an etcd without quorum, a retry
// timer — must not keep the process alive: in a Kubernetes pod that holds the pod until its
// grace period ends (the last server of a cluster uninstalled stayed a minute). The log's
// asynchronous destination is flushed at exit (pino).
process.exit(code);
