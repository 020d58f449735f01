export * from './cluster-ca.ts';
export * from './config.ts';
export * from './label-selector.ts';
export * from './leader.ts';
export * from './plan.ts';
export * from './server-pod.ts';
