import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../process.ts';

/**
 * Container images with no registry: a `docker save` style archive (manifest.json, the image
 * config, its layers) made from a root filesystem folder, which `ctr images import` loads.
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

/** An image archive unpacked into a folder (`tar -xf archive -C dir`): its layers are reused as they are. */
export interface UnpackedArchive {
  readonly dir: string;
}

/**
 * Writes the archive of an image named `ref` (e.g. `dotmesh.test/busybox:1a2b`) to `out`, using
 * `work` for the parts. Its last layer is `rootfs` (owners and modes kept, numeric ids), or with
 * `paths` only those paths of it (relative, e.g. `./opt/dotmesh`). With `base` (an archive of
 * this module, unpacked), the image is that image's layers, unchanged, plus its own: containerd
 * then stores and unpacks the shared layers once per node, whichever image brought them first.
 */
export async function writeImageArchive(o: {
  rootfs: string;
  ref: string;
  config: ImageConfig;
  work: string;
  out: string;
  base?: UnpackedArchive;
  paths?: readonly string[];
}): Promise<void> {
  const layers = join(o.work, 'archive');
  await mkdir(layers, { recursive: true });
  const diffIds: string[] = [];
  if (o.base) {
    const [baseManifest] = JSON.parse(await readFile(join(o.base.dir, 'manifest.json'), 'utf8')) as {
      Config: string;
      Layers: string[];
    }[];
    const baseConfig = JSON.parse(await readFile(join(o.base.dir, baseManifest!.Config), 'utf8')) as {
      rootfs: { diff_ids: string[] };
    };
    for (const [i, layer] of baseManifest!.Layers.entries()) {
      const diffId = baseConfig.rootfs.diff_ids[i]!.replace(/^sha256:/, '');
      await mkdir(join(layers, diffId));
      await link(join(o.base.dir, layer), join(layers, diffId, 'layer.tar'));
      diffIds.push(diffId);
    }
  }
  const layerTmp = join(layers, 'layer.tar');
  await runCommand('tar', ['--numeric-owner', '--xattrs', '-C', o.rootfs, '-cf', layerTmp, ...(o.paths ?? ['.'])], {
    timeoutMs: 600_000,
  });
  const diffId = await sha256File(layerTmp);
  await mkdir(join(layers, diffId));
  await rename(layerTmp, join(layers, diffId, 'layer.tar'));
  diffIds.push(diffId);
  const config = JSON.stringify({
    architecture: ARCH[process.arch] ?? process.arch,
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], ...o.config },
    rootfs: { type: 'layers', diff_ids: diffIds.map((d) => `sha256:${d}`) },
    history: diffIds.map(() => ({ created_by: 'dotmesh testkit (writeImageArchive)' })),
  });
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  await writeFile(join(layers, configName), config);
  const layerFiles = diffIds.map((d) => `${d}/layer.tar`);
  const manifest = [{ Config: configName, RepoTags: [o.ref], Layers: layerFiles }];
  await writeFile(join(layers, 'manifest.json'), JSON.stringify(manifest));
  await runCommand('tar', ['-C', layers, '-cf', o.out, 'manifest.json', configName, ...layerFiles], {
    timeoutMs: 600_000,
  });
}
