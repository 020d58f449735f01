import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import { FLEX_DRIVER_DIR, FLEX_DRIVER_FILE } from '@dotmesh/rpc/flexvolume';

/** Where the driver of a FlexVolume plugin directory lives: `<dir>/dotmesh.io~dm/`. */
export function flexDriverDir(pluginDir: string): string {
  return join(pluginDir, FLEX_DRIVER_DIR);
}

/**
 * Installs the driver executable as `<dir>/dotmesh.io~dm/dm` (mode 0755, replaced atomically,
 * left alone when it is the same file already: the kubelet may be running it). Returns whether
 * it wrote a new one.
 */
export async function installFlexDriver(pluginDir: string, binary: string): Promise<boolean> {
  const source = await stat(binary).catch(() => undefined);
  if (!source?.isFile()) {
    throw new DotmeshError('UNAVAILABLE', `the FlexVolume driver ${binary} is not there`, {
      hint: 'build it with npm run build (dist/dotmesh-flexvolume), or set flexVolumeDriver in the server config',
    });
  }
  const dir = flexDriverDir(pluginDir);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const installed = join(dir, FLEX_DRIVER_FILE);
  const current = await stat(installed).catch(() => undefined);
  if (current?.size === source.size && (await sha256(installed)) === (await sha256(binary))) return false;
  const tmp = `${installed}.tmp-${process.pid}`;
  try {
    await copyFile(binary, tmp);
    await chmod(tmp, 0o755);
    await rename(tmp, installed);
  } finally {
    await rm(tmp, { force: true });
  }
  return true;
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
