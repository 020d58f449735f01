export * from './capabilities.ts';
export * from './cleanup.ts';
export * from './loop.ts';
export * from './netns.ts';
export * from './ports.ts';
export * from './process.ts';
export * from './tmp.ts';
