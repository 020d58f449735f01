export * from './base32.ts';
export * from './errors.ts';
export * from './history.ts';
export * from './metadata.ts';
export * from './names.ts';
export * from './refs.ts';
export * from './transfer-plan.ts';
export * from './types.ts';
