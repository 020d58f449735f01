/**
 * @dotmesh/rpc: the DotmeshRPC wire contract shared by the server and every client —
 * JSON-RPC 2.0 framing (codec), Go-compatible params decoding, one schema per method, the
 * typed client, and the server config file written by `dm cluster init`.
 */
export { backupV1Schema, parseBackup } from './backup.ts';
export * from './client.ts';
export * from './codec.ts';
export * from './flexvolume.ts';
export * from './methods.ts';
export * from './params.ts';
export * from './rpc-error.ts';
export * from './server-config.ts';
export type * from './types.ts';
