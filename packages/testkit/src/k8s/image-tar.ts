import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../process.ts';

/**
 * Container images with no registry: a `docker save` style archive (manifest.json, the image
 * config, one layer) made from a root filesystem folder, which `ctr images import` loads.
 */
export interface ImageConfig {
  readonly Entrypoint?: readonly string[];
  readonly Cmd?: readonly string[];
  readonly Env?: readonly string[];
  readonly WorkingDir?: string;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const ARCH: Readonly<Record<string, string>> = { x64: 'amd64', arm64: 'arm64' };

/**
 * Writes the archive of an image named `ref` (e.g. `dotmesh.test/busybox:1a2b`) whose single
 * layer is `rootfs` (owners and modes kept, numeric ids) to `out`, using `work` for the parts.
 */
export async function writeImageArchive(o: {
  rootfs: string;
  ref: string;
  config: ImageConfig;
  work: string;
  out: string;
}): Promise<void> {
  const layers = join(o.work, 'archive');
  await mkdir(layers, { recursive: true });
  const layerTmp = join(layers, 'layer.tar');
  await runCommand('tar', ['--numeric-owner', '--xattrs', '-C', o.rootfs, '-cf', layerTmp, '.'], { timeoutMs: 600_000 });
  const diffId = await sha256File(layerTmp);
  await mkdir(join(layers, diffId));
  await rename(layerTmp, join(layers, diffId, 'layer.tar'));
  const config = JSON.stringify({
    architecture: ARCH[process.arch] ?? process.arch,
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], ...o.config },
    rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
    history: [{ created_by: 'dotmesh testkit (writeImageArchive)' }],
  });
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  await writeFile(join(layers, configName), config);
  const manifest = [{ Config: configName, RepoTags: [o.ref], Layers: [`${diffId}/layer.tar`] }];
  await writeFile(join(layers, 'manifest.json'), JSON.stringify(manifest));
  await runCommand('tar', ['-C', layers, '-cf', o.out, 'manifest.json', configName, `${diffId}/layer.tar`], {
    timeoutMs: 600_000,
  });
}
