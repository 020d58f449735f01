#!/usr/bin/env node
import { dirname } from 'node:path';
import { main } from './main.ts';

const code = await main(process.argv.slice(2), dirname(process.argv[1] ?? '.'), process.env);
// A failed start may leave timers and connections behind (a lease, a store client): exit anyway.
if (code !== 0) process.exit(code);
