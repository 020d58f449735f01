export * from './capabilities.ts';
