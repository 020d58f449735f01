import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, readdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { AfterHook } from '../cleanup.ts';
import { runCommand } from '../process.ts';
import { sha256File, type UnpackedArchive } from './image-tar.ts';
import { baseDirs, cachedImage, type ImageOptions, keyOf, runInRootfs, serverBaseImage, type TestImage } from './images.ts';
import { importMissingImages, type NodePaths, removeImages, tagImage } from './node.ts';
import type { K8sTools } from './tools.ts';

/**
 * The images of the product itself, for the Kubernetes tests (docs/kubernetes.md, "Images"),
 * built from the repository with no registry and cached like the test images (images.ts). The
 * server, operator and provisioner images are server-base's layer (unchanged) plus a layer of
 * their own files:
 * - server: server-base + dotmesh-server, dm, the CSI driver dotmesh-csi, dotmesh-pump and the
 *   FlexVolume driver dotmesh-flexvolume (a single executable the server installs on its node)
 *   from `npm run build`'s output (in `/opt/dotmesh`, first on PATH, as `dotmesh-server`, `dm`
 *   and `dotmesh-csi`), the .proto files dotmesh-csi loads (`/opt/dotmesh/proto`) and the
 *   tools' etcd (/usr/local/bin/etcd: each server runs its node's managed etcd member);
 * - operator: server-base + the operator's bundle (`dotmesh-operator` on PATH);
 * - provisioner: server-base + the dynamic provisioner's bundle (`dotmesh-provisioner` on PATH);
 * - etcd: the tools' etcd 3.6.5 (static) at /usr/local/bin/etcd, and nothing else.
 * Keys hash every file copied in, so a rebuilt bundle is a new image name.
 */
export const PRODUCT_DIR = '/opt/dotmesh';
/** Bump when the server, operator or provisioner recipe changes what it produces for the same inputs. */
const PRODUCT_RECIPE_VERSION = 4;
/** The same for the single-binary images (etcd, the CSI sidecars). */
const BINARY_RECIPE_VERSION = 3;

export interface ProductImageOptions extends ImageOptions {
  /** `npm run build`'s output directory (dist/ of the repository). */
  readonly dist: string;
  /** The server image: the etcd binary of each node's managed etcd member (the tools' 3.6.5). */
  readonly etcd?: string;
  /**
   * The server image: the .proto files the CSI driver loads (the tools' copies), put at
   * CSI_PROTO and REGISTRATION_PROTO.
   */
  readonly protos?: { readonly csi: string; readonly pluginRegistration: string };
  /** The Node.js binary of server-base (default: the running one). */
  readonly node?: string;
}

/** The bundles (`<name>.mjs`) an image holds, the chunks their names own, and extra files. */
interface BundleSet {
  readonly entries: readonly string[];
  readonly extra: readonly string[];
  /** Arguments with which the first entry exits 0 without doing anything (the image's check). */
  readonly check: readonly string[];
  /** Whether the image holds etcd at /usr/local/bin/etcd. */
  readonly etcd?: boolean;
  /** Whether the image holds the CSI driver's .proto files. */
  readonly protos?: boolean;
}

const SERVER_BUNDLES: BundleSet = {
  entries: ['dotmesh-server', 'dm', 'dotmesh-csi'],
  extra: ['dotmesh-pump', 'dotmesh-flexvolume'],
  check: ['version'],
  etcd: true,
  protos: true,
};
/** Where the server image keeps the CSI spec's csi.proto and the kubelet's plugin-registration api.proto. */
export const CSI_PROTO = `${PRODUCT_DIR}/proto/csi.proto`;
export const REGISTRATION_PROTO = `${PRODUCT_DIR}/proto/pluginregistration/api.proto`;
const OPERATOR_BUNDLES: BundleSet = { entries: ['dotmesh-operator'], extra: [], check: ['--help'] };
const PROVISIONER_BUNDLES: BundleSet = { entries: ['dotmesh-provisioner'], extra: [], check: ['--help'] };
/** The chunks directory of the etcd3 client's .proto files (scripts/build.ts, ETCD_PROTO_DIR). */
const ETCD_PROTO_DIR = 'etcd-proto';

/** The paths (relative to dist) that `set` needs; throws naming what `npm run build` did not make. */
async function bundleFiles(dist: string, set: BundleSet): Promise<string[]> {
  const files: string[] = [];
  for (const e of set.entries) files.push(`${e}.mjs`);
  files.push(...set.extra);
  const missing = files.filter((f) => !existsSync(join(dist, f)));
  if (missing.length > 0) throw new Error(`${dist} has no ${missing.join(', ')}: run \`npm run build\` first`);
  const chunks = await readdir(join(dist, 'chunks')).catch(() => [] as string[]);
  for (const c of chunks.sort()) {
    if (set.entries.some((e) => c.startsWith(`${e}-`)) && c.endsWith('.mjs')) files.push(join('chunks', c));
  }
  return files;
}

async function hashFiles(dist: string, files: readonly string[]): Promise<string> {
  const h = createHash('sha256');
  for (const f of files) h.update(`${f}\0${await sha256File(join(dist, f))}\0`);
  const proto = join(dist, 'chunks', ETCD_PROTO_DIR);
  if (existsSync(proto)) for (const f of (await readdir(proto)).sort()) h.update(`${f}\0${await readFile(join(proto, f))}`);
  return h.digest('hex');
}

/** Where unpackServerBase leaves server-base's archive unpacked. */
const unpackedBase = (work: string): UnpackedArchive => ({ dir: join(work, 'base') });

/** Unpacks server-base's archive into `unpackedBase(work)`, and its layers into `rootfs`. */
async function unpackServerBase(base: TestImage, rootfs: string, work: string): Promise<void> {
  const { dir } = unpackedBase(work);
  await mkdir(dir);
  await runCommand('tar', ['-C', dir, '-xf', base.archive], { timeoutMs: 600_000 });
  const [manifest] = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
  for (const layer of manifest!.Layers) {
    await runCommand('tar', ['--numeric-owner', '--xattrs', '-C', rootfs, '-xpf', join(dir, layer)], { timeoutMs: 600_000 });
  }
}

async function productImage(name: string, set: BundleSet, o: ProductImageOptions): Promise<TestImage> {
  const base = await serverBaseImage(o);
  const files = await bundleFiles(o.dist, set);
  const etcd = set.etcd ? o.etcd : undefined;
  if (set.etcd && !etcd) throw new Error(`the ${name} image needs the etcd binary (options.etcd)`);
  const protos = set.protos ? o.protos : undefined;
  if (set.protos && !protos) throw new Error(`the ${name} image needs the CSI .proto files (options.protos)`);
  const key = keyOf(
    `product-v${PRODUCT_RECIPE_VERSION}`,
    name,
    base.ref,
    await hashFiles(o.dist, files),
    etcd ? await sha256File(etcd) : '',
    protos ? `${await sha256File(protos.csi)}/${await sha256File(protos.pluginRegistration)}` : '',
  );
  // The executables are symlinks beside their bundles (the server finds dotmesh-pump beside
  // the path it was started by), that directory first on PATH.
  const config = {
    Entrypoint: [`${PRODUCT_DIR}/${set.entries[0]}`],
    Env: [`PATH=${PRODUCT_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`],
  };
  return cachedImage(
    name,
    key,
    o,
    config,
    async (rootfs, work) => {
      await unpackServerBase(base, rootfs, work);
      const target = join(rootfs, PRODUCT_DIR.slice(1));
      await mkdir(join(target, 'chunks'), { recursive: true });
      for (const f of files) await copyFile(join(o.dist, f), join(target, f));
      if (existsSync(join(o.dist, 'chunks', ETCD_PROTO_DIR))) {
        await cp(join(o.dist, 'chunks', ETCD_PROTO_DIR), join(target, 'chunks', ETCD_PROTO_DIR), { recursive: true });
      }
      for (const e of set.entries) {
        await chmod(join(target, `${e}.mjs`), 0o755);
        await symlink(`${e}.mjs`, join(target, e));
      }
      for (const x of set.extra) await chmod(join(target, x), 0o755);
      if (protos) {
        await mkdir(join(rootfs, REGISTRATION_PROTO.slice(1), '..'), { recursive: true });
        await copyFile(protos.csi, join(rootfs, CSI_PROTO.slice(1)));
        await copyFile(protos.pluginRegistration, join(rootfs, REGISTRATION_PROTO.slice(1)));
      }
      if (etcd) {
        await copyFile(etcd, join(rootfs, 'usr/local/bin/etcd'));
        await chmod(join(rootfs, 'usr/local/bin/etcd'), 0o755);
        await runInRootfs(rootfs, ['/usr/local/bin/etcd', '--version']);
      }
      // Each bundle must load in the image (its chunks there, its Node the image's).
      await runInRootfs(rootfs, [`${PRODUCT_DIR}/${set.entries[0]}`, ...set.check]).catch((e: Error) => {
        throw new Error(`${name} image: ${set.entries[0]} does not run inside the image: ${e.message}`, { cause: e });
      });
      if (set.extra.includes('dotmesh-pump')) await runInRootfs(rootfs, [`${PRODUCT_DIR}/dotmesh-pump`, '--version']);
      if (set.extra.includes('dotmesh-flexvolume')) {
        const { stdout } = await runInRootfs(rootfs, [`${PRODUCT_DIR}/dotmesh-flexvolume`, 'init']);
        if (!stdout.includes('"Success"')) throw new Error(`${name} image: dotmesh-flexvolume init answered ${stdout}`);
      }
    },
    // server-base's layer as it is (each node holds it already: the cluster imports server-base),
    // then one of what this image adds.
    { base: unpackedBase, paths: [`.${PRODUCT_DIR}`, ...(etcd ? ['./usr/local/bin/etcd'] : [])] },
  );
}

/** The dotmesh server image (`dotmesh-server`, `dm`, `dotmesh-pump`, `etcd`; btrfs-progs from server-base). */
export function serverImage(o: ProductImageOptions): Promise<TestImage> {
  return productImage('server', SERVER_BUNDLES, o);
}

/** The operator image (`dotmesh-operator`). */
export function operatorImage(o: ProductImageOptions): Promise<TestImage> {
  return productImage('operator', OPERATOR_BUNDLES, o);
}

/** The dynamic provisioner's image (`dotmesh-provisioner`). */
export function provisionerImage(o: ProductImageOptions): Promise<TestImage> {
  return productImage('provisioner', PROVISIONER_BUNDLES, o);
}

/** The tools' etcd (3.6.5, a static binary) as an image: `/usr/local/bin/etcd`. */
export function etcdImage(tools: K8sTools, o: ImageOptions = {}): Promise<TestImage> {
  return binaryImage('etcd', tools.bin('etcd'), '/usr/local/bin/etcd', ['--version'], o);
}

/** The CSI sidecars the manifest of docs/kubernetes.md runs, by their names there. */
export const CSI_SIDECARS = ['csi-provisioner', 'csi-attacher', 'csi-snapshotter', 'snapshot-controller'] as const;
export type CsiSidecar = (typeof CSI_SIDECARS)[number];

/**
 * A CSI sidecar built by the tools (a static Go binary) as the image its project publishes:
 * the binary at `/<name>`, its entrypoint.
 */
export function csiSidecarImage(tools: K8sTools, name: CsiSidecar, o: ImageOptions = {}): Promise<TestImage> {
  return binaryImage(name, tools.bin(name), `/${name}`, ['--help'], o);
}

/** An image holding only the static binary `bin` at `path` (its entrypoint), checked by running it with `check`. */
async function binaryImage(
  name: string,
  bin: string,
  path: string,
  check: readonly string[],
  o: ImageOptions,
): Promise<TestImage> {
  const config = { Entrypoint: [path] };
  return cachedImage(name, keyOf(`product-v${BINARY_RECIPE_VERSION}`, name, await sha256File(bin)), o, config, async (rootfs) => {
    await baseDirs(rootfs);
    await mkdir(join(rootfs, path.slice(1), '..'), { recursive: true });
    await copyFile(bin, join(rootfs, path.slice(1)));
    await chmod(join(rootfs, path.slice(1)), 0o755);
    await runInRootfs(rootfs, [path, ...check]);
  });
}

/**
 * Imports `images` into every node's containerd of a (shared) test cluster, unless the node
 * holds them already. They stay until the cluster goes (its containerd roots go with it): the
 * run's shared cluster imports each build of the product images once for all the files that
 * install them (an import of the three is ≈ 1 GB per node), and a reference names its content,
 * so a later file finds exactly the image it would import. Only what the files make from them
 * (pods, tags: `tagInCluster`) is theirs to remove.
 */
export async function importIntoCluster(
  cluster: { readonly nodes: readonly { readonly paths: NodePaths }[] },
  images: readonly TestImage[],
): Promise<void> {
  await Promise.all(cluster.nodes.map((n) => importMissingImages(n.paths, images)));
}
/**
 * `image` (imported already) under another name `ref` in every node's containerd: the same
 * build as another version, for upgrade tests (no registry, no rebuild). Removed when `t` ends.
 */
export async function tagInCluster(
  cluster: { readonly nodes: readonly { readonly paths: NodePaths }[] },
  image: TestImage,
  ref: string,
  t: AfterHook,
): Promise<TestImage> {
  const tagged = { ref, archive: image.archive };
  t.after(() => Promise.all(cluster.nodes.map((n) => removeImages(n.paths, [tagged]))).then(() => undefined));
  await Promise.all(cluster.nodes.map((n) => tagImage(n.paths, image.ref, ref)));
  return tagged;
}
