export { BtrfsDriver, type BtrfsDriverOptions } from './btrfs/btrfs-driver.ts';
export {
  destroyPool,
  growPool,
  loopDevicesOf,
  type OpenedPool,
  type OpenPoolOptions,
  openPool,
  releasePool,
} from './btrfs/pool.ts';
export { ensurePoolFile, MIGRATIONS, type Migration, POOL_FORMAT_VERSION, type PoolFile } from './btrfs/pool-format.ts';
export { acquirePoolLock, type PoolLock } from './btrfs/pool-lock.ts';
export { checkPump, type PumpConfig } from './btrfs/pump.ts';
export * from './driver.ts';
export {
  createExec,
  EXEC_ENV,
  type Exec,
  ExecError,
  type ExecLogger,
  type RunningCommand,
  type RunOptions,
  type RunResult,
  type SpawnOptions,
} from './exec.ts';
export {
  END_FRAME_BYTES,
  FRAME_DATA,
  FRAME_END,
  FrameReader,
  flipOnePayloadByte,
  frameDecoder,
  frameEncoder,
  MAX_FRAME_BYTES,
  PIPELINE_HIGH_WATER_MARK,
  readFramed,
  TARGET_FRAME_BYTES,
} from './frames.ts';
export { checkCommitId, checkVolumeId, STORAGE_ID_PATTERN } from './ids.ts';
export { MemoryDriver } from './memory/memory-driver.ts';
export { isPlainSocket, watchReads } from './sockets.ts';
