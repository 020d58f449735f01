import { isAbsolute } from 'node:path';
import {
  DEFAULT_ETCD_MOVE_WAIT_SECONDS,
  MAX_ETCD_MOVE_WAIT_SECONDS,
  MIN_ETCD_MOVE_WAIT_SECONDS,
  parseSize,
} from '@dotmesh/rpc/server-defaults';
import { type LabelSelector, parseLabelSelector } from './label-selector.ts';

/**
 * The operator's configuration: the ConfigMap `dotmesh/configuration`, with the original
 * operator's keys, defaults and units (docs/kubernetes.md, "The ConfigMap"). Parsing is pure:
 * `parseOperatorConfig` returns the config and every problem found; the caller reports the
 * problems (a warning Event and a log line each) and, when one is `invalid`, keeps the last good
 * config instead.
 */
export interface OperatorConfig {
  /** The raw selector ("" selects every node) and its parsed form. */
  readonly nodeSelector: string;
  readonly nodeSelectorParsed: LabelSelector;
  /** Read for compatibility and never contacted (no upgrade checks are made). */
  readonly upgradesUrl: string;
  readonly upgradesIntervalSeconds: number;
  /** Absolute; `#HOSTNAME#` stands for the node's name (an addition: `flexvolumeDirFor`). */
  readonly flexvolumeDriverDir: string;
  /**
   * The kubelet's root directory (`--root-dir`), absolute, `#HOSTNAME#` allowed (an addition):
   * the server pod sees it read-only, to end the FlexVolume uses of volumes the kubelet
   * unmounted while the server was down (`kubeletRootDirFor`).
   */
  readonly kubeletRootDir: string;
  readonly poolNamePrefix: string;
  readonly logAddress: string;
  /** `local`: a pool file under poolLocation; `pvcPerNode`: the pool on a PVC per node (pool-claims.ts). */
  readonly storageMode: StorageMode;
  readonly local: {
    readonly poolSizePerNodeBytes: number;
    /** Absolute; `#HOSTNAME#` stands for the node's name (`poolLocationFor`). */
    readonly poolLocation: string;
  };
  readonly pvcPerNode: {
    readonly pvSizePerNodeBytes: number;
    readonly storageClass: string;
    /**
     * An addition: how long a moved pool's etcd member waits for the other members to take its
     * new address (the servers' `etcdMoveWaitSeconds`; docs/kubernetes.md, "Replacing every
     * node at once").
     */
    readonly etcdMoveWaitSeconds: number;
  };
}

export type StorageMode = 'local' | 'pvcPerNode';

export const CONFIGMAP_NAME = 'configuration';
export const HOSTNAME_PLACEHOLDER = '#HOSTNAME#';

/** The original's defaults, as the ConfigMap's text. */
export const CONFIG_DEFAULTS: Readonly<Record<string, string>> = {
  nodeSelector: '',
  upgradesUrl: 'https://checkpoint.dotmesh.com/',
  upgradesIntervalSeconds: '14400',
  flexvolumeDriverDir: '/usr/libexec/kubernetes/kubelet-plugins/volume/exec',
  kubeletRootDir: '/var/lib/kubelet',
  poolNamePrefix: '',
  logAddress: '',
  storageMode: 'local',
  'local.poolSizePerNode': '10G',
  'local.poolLocation': '/var/lib/dotmesh',
  'pvcPerNode.pvSizePerNode': '10G',
  'pvcPerNode.storageClass': 'standard',
  'pvcPerNode.etcdMoveWaitSeconds': String(DEFAULT_ETCD_MOVE_WAIT_SECONDS),
};

/** Keys the original read that mean nothing here (ZFS): accepted, with a warning. */
export const OBSOLETE_KEYS: Readonly<Record<string, string>> = {
  'kernel.zfsVersion': 'dotmesh now stores dots on btrfs: there is no ZFS module to choose',
  poolName: 'use poolNamePrefix (the original read poolName only in its documentation)',
};

/** `unsupported`: a valid value this operator cannot act on yet (warned about, otherwise ignored). */
/** Keys whose non-empty value this operator does not act on yet. */
const UNSUPPORTED_WHEN_SET: Readonly<Record<string, string>> = {
  logAddress: "the servers log to their pods' output (kubectl logs)",
  poolNamePrefix: "btrfs pools have no name; each node's pool is its directory, local.poolLocation",
};

export type ConfigProblemKind = 'invalid' | 'obsolete' | 'unknown' | 'unsupported';

export interface ConfigProblem {
  readonly kind: ConfigProblemKind;
  readonly key: string;
  /** One sentence naming the key and, for an invalid value, the values accepted. */
  readonly message: string;
}

export interface ParsedConfig {
  /** Undefined when some value is invalid (keep the last good config). */
  readonly config: OperatorConfig | undefined;
  readonly problems: readonly ConfigProblem[];
}

/** The smallest pool volume: room for a btrfs pool and the node's etcd data. */
export const MIN_PV_SIZE_BYTES = 512 * 2 ** 20;
const SIZE_ACCEPTED = 'a size such as 10G, 512M or 1T (binary units, as truncate -s reads them)';
const MAX_POOL_PREFIX = 64;
const DNS_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[-A-Za-z0-9.]*[A-Za-z0-9])?)(?::(\d{1,5}))?$/;

type Field<T> = (text: string) => T;

/** Throws with the accepted values when `text` is not one of them. */
function accepted(what: string): never {
  throw new Error(`accepted values: ${what}`);
}

const size: Field<number> = (text) => {
  try {
    return parseSize(text);
  } catch {
    return accepted(SIZE_ACCEPTED);
  }
};

/** An absolute path with no `..` component and no control characters; `#HOSTNAME#` allowed. */
function absolutePath(): Field<string> {
  return (text) => {
    const path = text.replaceAll(HOSTNAME_PLACEHOLDER, 'h');
    const ok = isAbsolute(path) && !path.split('/').includes('..') && !/[\0-\x1f]/.test(path) && path.length <= 1024;
    return ok ? text : accepted(`an absolute path without ".." components (${HOSTNAME_PLACEHOLDER} stands for the node's name)`);
  };
}

const FIELDS = {
  nodeSelector: (text: string) => {
    try {
      return parseLabelSelector(text);
    } catch (e) {
      return accepted(`a label selector such as "dotmesh.io/enabled=true" or "" for every node (${(e as Error).message})`);
    }
  },
  upgradesUrl: (text: string) => text,
  upgradesIntervalSeconds: (text: string) =>
    /^\d{1,9}$/.test(text.trim()) && Number(text) > 0 ? Number(text) : accepted('a whole number of seconds above 0'),
  flexvolumeDriverDir: absolutePath(),
  kubeletRootDir: absolutePath(),
  poolNamePrefix: (text: string) =>
    /^[A-Za-z0-9_.-]*$/.test(text) && text.length <= MAX_POOL_PREFIX
      ? text
      : accepted(`up to ${MAX_POOL_PREFIX} letters, digits, "_", "." or "-"`),
  logAddress: (text: string) => {
    const m = HOST_PORT.exec(text);
    return text === '' || (m && (m[1] === undefined || (Number(m[1]) > 0 && Number(m[1]) < 65536)))
      ? text
      : accepted('"" or host[:port]');
  },
  storageMode: (text: string): StorageMode =>
    text === 'local' || text === 'pvcPerNode'
      ? text
      : accepted("local (a pool file on each node) or pvcPerNode (each node's pool on a PersistentVolumeClaim)"),
  'local.poolSizePerNode': size,
  'local.poolLocation': absolutePath(),
  // Also a Kubernetes Quantity with a binary suffix (10Gi).
  'pvcPerNode.pvSizePerNode': (text: string) => {
    const bytes = size(text.replace(/^(\s*\d+(?:\.\d+)?\s*[KMGTP])i\s*$/i, '$1'));
    return bytes >= MIN_PV_SIZE_BYTES ? bytes : accepted(`${SIZE_ACCEPTED}, at least 512M`);
  },
  'pvcPerNode.storageClass': (text: string) =>
    DNS_SUBDOMAIN.test(text) && text.length <= 253 ? text : accepted('the name of a StorageClass'),
  'pvcPerNode.etcdMoveWaitSeconds': (text: string) => {
    const seconds = /^\d{1,5}$/.test(text.trim()) ? Number(text) : Number.NaN;
    return seconds >= MIN_ETCD_MOVE_WAIT_SECONDS && seconds <= MAX_ETCD_MOVE_WAIT_SECONDS
      ? seconds
      : accepted(`a whole number of seconds from ${MIN_ETCD_MOVE_WAIT_SECONDS} to ${MAX_ETCD_MOVE_WAIT_SECONDS}`);
  },
} as const;

type Parsed = { -readonly [K in keyof typeof FIELDS]: ReturnType<(typeof FIELDS)[K]> };

/** Parses the ConfigMap's `data` (missing keys take their defaults; `undefined`: no ConfigMap). */
export function parseOperatorConfig(data: Readonly<Record<string, string>> | undefined): ParsedConfig {
  const given = data ?? {};
  const problems: ConfigProblem[] = [];
  for (const key of Object.keys(given).sort()) {
    const obsolete = OBSOLETE_KEYS[key];
    if (obsolete !== undefined) {
      problems.push({ kind: 'obsolete', key, message: `ConfigMap key ${key} is obsolete and ignored: ${obsolete}` });
    } else if (!Object.hasOwn(FIELDS, key)) {
      problems.push({
        kind: 'unknown',
        key,
        message: `ConfigMap key ${key} is not known and ignored (known keys: ${Object.keys(FIELDS).join(', ')})`,
      });
    }
  }
  const parsed: Partial<Parsed> = {};
  for (const [key, field] of Object.entries(FIELDS) as [keyof Parsed, Field<unknown>][]) {
    const text = Object.hasOwn(given, key) ? given[key]! : CONFIG_DEFAULTS[key]!;
    try {
      (parsed as Record<string, unknown>)[key] = field(text);
    } catch (e) {
      problems.push({
        kind: 'invalid',
        key,
        message: `ConfigMap key ${key} has the invalid value ${JSON.stringify(text)}; ${(e as Error).message}`,
      });
    }
  }
  if (problems.some((p) => p.kind === 'invalid')) return { config: undefined, problems };
  const p = parsed as Parsed;
  for (const [key, why] of Object.entries(UNSUPPORTED_WHEN_SET)) {
    if ((p as Record<string, unknown>)[key] !== '') {
      problems.push({ kind: 'unsupported', key, message: `ConfigMap key ${key} is not supported yet and is ignored: ${why}` });
    }
  }
  return {
    problems,
    config: {
      nodeSelector: (given.nodeSelector ?? '').trim(),
      nodeSelectorParsed: p.nodeSelector,
      upgradesUrl: p.upgradesUrl,
      upgradesIntervalSeconds: p.upgradesIntervalSeconds,
      flexvolumeDriverDir: p.flexvolumeDriverDir,
      kubeletRootDir: p.kubeletRootDir,
      poolNamePrefix: p.poolNamePrefix,
      logAddress: p.logAddress,
      storageMode: p.storageMode,
      local: { poolSizePerNodeBytes: p['local.poolSizePerNode'], poolLocation: p['local.poolLocation'] },
      pvcPerNode: {
        pvSizePerNodeBytes: p['pvcPerNode.pvSizePerNode'],
        storageClass: p['pvcPerNode.storageClass'],
        etcdMoveWaitSeconds: p['pvcPerNode.etcdMoveWaitSeconds'],
      },
    },
  };
}

/** The node's pool directory: `local.poolLocation` with `#HOSTNAME#` replaced by the node's name. */
export function poolLocationFor(config: OperatorConfig, nodeName: string): string {
  return config.local.poolLocation.replaceAll(HOSTNAME_PLACEHOLDER, nodeName);
}

/** The node's FlexVolume driver directory: `flexvolumeDriverDir` with `#HOSTNAME#` replaced. */
export function flexvolumeDirFor(config: OperatorConfig, nodeName: string): string {
  return config.flexvolumeDriverDir.replaceAll(HOSTNAME_PLACEHOLDER, nodeName);
}

/** The node's kubelet root directory: `kubeletRootDir` with `#HOSTNAME#` replaced. */
export function kubeletRootDirFor(config: OperatorConfig, nodeName: string): string {
  return config.kubeletRootDir.replaceAll(HOSTNAME_PLACEHOLDER, nodeName);
}
