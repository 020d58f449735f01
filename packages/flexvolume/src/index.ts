export { type DriverIo, type DriverReply, runDriver } from './driver.ts';
export { DEFAULT_NAMESPACE, parseMountArgs } from './options.ts';
