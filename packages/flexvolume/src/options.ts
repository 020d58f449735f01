import { DEFAULT_SUBDOT, DotmeshError, validateName } from '@dotmesh/core';
import { checkDotName, checkTarget, type FlexMountRequest } from '@dotmesh/rpc/flexvolume';

/** Longest options text the driver reads (the kubelet's are a few hundred bytes). */
const MAX_OPTIONS_BYTES = 64 * 1024;
/** The namespace of a PV that names none (as the StorageClass's default). */
export const DEFAULT_NAMESPACE = 'admin';

/**
 * The kubelet's `mount <dir> <json>` arguments as a mount request: the PV's options `namespace`
 * (default admin), `name` (`dot` or `dot@branch`, required) and `subdot` ("" → `__default__`,
 * `__root__` → the dot's root), and the kubelet's own `kubernetes.io/readwrite` ("ro" mounts
 * read-only). Other `kubernetes.io/*` keys (pod name, fsType...) are ignored; any other key is
 * refused, so a misspelt option is not silently dropped.
 */
export function parseMountArgs(dir: string | undefined, optionsText: string | undefined): FlexMountRequest {
  const target = checkTarget(dir);
  if (optionsText === undefined || optionsText === '') {
    throw new DotmeshError('INVALID_ARGUMENT', 'mount needs the JSON options as its second argument');
  }
  if (Buffer.byteLength(optionsText) > MAX_OPTIONS_BYTES) {
    throw new DotmeshError('INVALID_ARGUMENT', `the options are over ${MAX_OPTIONS_BYTES} bytes`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(optionsText);
  } catch {
    throw new DotmeshError('INVALID_ARGUMENT', 'the options are not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new DotmeshError('INVALID_ARGUMENT', 'the options must be a JSON object');
  }
  const options = parsed as Record<string, unknown>;
  const unknownKeys = Object.keys(options).filter((k) => !k.startsWith('kubernetes.io/') && !OPTION_KEYS.has(k));
  if (unknownKeys.length > 0) {
    throw new DotmeshError('INVALID_ARGUMENT', `unknown option ${JSON.stringify(unknownKeys[0]!.slice(0, 64))}`, {
      hint: 'dotmesh.io/dm takes the options namespace, name and subdot',
    });
  }
  if (options.name === undefined) {
    throw new DotmeshError('INVALID_ARGUMENT', 'the option "name" (the dot) is missing', {
      hint: 'set flexVolume.options.name in the PersistentVolume',
    });
  }
  const namespace = options.namespace === undefined || options.namespace === '' ? DEFAULT_NAMESPACE : options.namespace;
  const subdot = options.subdot === undefined || options.subdot === '' ? DEFAULT_SUBDOT : options.subdot;
  const readWrite = options['kubernetes.io/readwrite'];
  if (readWrite !== undefined && readWrite !== 'ro' && readWrite !== 'rw') {
    throw new DotmeshError('INVALID_ARGUMENT', 'kubernetes.io/readwrite must be "ro" or "rw"');
  }
  return {
    Namespace: validateName('namespace', namespace),
    Name: checkDotName(options.name),
    Subdot: validateName('subdot', subdot),
    Target: target,
    ReadOnly: readWrite === 'ro',
  };
}

const OPTION_KEYS = new Set(['namespace', 'name', 'subdot']);
