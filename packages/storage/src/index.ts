export { BtrfsDriver, type BtrfsDriverOptions } from './btrfs/btrfs-driver.ts';
export { destroyPool, loopDevicesOf, type OpenedPool, type OpenPoolOptions, openPool } from './btrfs/pool.ts';
export { ensurePoolFile, MIGRATIONS, type Migration, POOL_FORMAT_VERSION, type PoolFile } from './btrfs/pool-format.ts';
export { acquirePoolLock, type PoolLock } from './btrfs/pool-lock.ts';
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
export { checkCommitId, checkVolumeId, STORAGE_ID_PATTERN } from './ids.ts';
export { MemoryDriver } from './memory/memory-driver.ts';
