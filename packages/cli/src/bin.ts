#!/usr/bin/env node
/**
 * The `dm` executable. It turns Node's compile cache on before it loads anything of the CLI
 * (a static import would be compiled before this module runs), then runs it (run.ts). Parsing
 * and compiling dm's modules is a large part of its start (P10); with the cache, every start
 * after the first reuses V8's code.
 */
import { enableCompileCache } from 'node:module';
import { compileCacheDir } from './compile-cache.ts';

const cacheDir = compileCacheDir(process.env);
if (cacheDir !== undefined) enableCompileCache(cacheDir);
await import('./run.ts');
