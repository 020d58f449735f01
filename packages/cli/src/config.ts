import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DotmeshError, formatDotName, parseDotName } from '@dotmesh/core';

/**
 * `~/.dotmesh/config`, byte-compatible with the original client (Go `encoding/json`, PascalCase,
 * compact). Contracts:
 * - Written with mode 0600 in a directory created 0700, atomically (temp file + rename).
 * - Keys we do not know (at the top level and in each remote) are kept on rewrite, after the
 *   known ones; known keys are written in the original's order with its zero values
 *   (`Port` omitted when 0, `CurrentBranches`/`DefaultRemoteVolumes` null when unset).
 * - Dot names used as keys (`CurrentVolume`, `CurrentBranches`) are in display form: the
 *   `admin/` namespace is stripped.
 */
export interface VolumeRef {
  Namespace: string;
  Name: string;
  [key: string]: unknown;
}

export interface DmRemote {
  User: string;
  Hostname: string;
  /** 0 = deduce (https 443, http 80, http 32607). Omitted from the file when 0. */
  Port: number;
  ApiKey: string;
  CurrentVolume: string;
  CurrentBranches: Record<string, string> | null;
  DefaultRemoteVolumes: Record<string, Record<string, VolumeRef>> | null;
  [key: string]: unknown;
}

export interface S3Remote {
  KeyID: string;
  SecretKey: string;
  Endpoint: string;
  DefaultRemoteVolumes: Record<string, Record<string, VolumeRef>> | null;
  [key: string]: unknown;
}

export interface DmConfig {
  CurrentRemote: string;
  Remotes: Record<string, DmRemote>;
  S3Remotes: Record<string, S3Remote>;
  [key: string]: unknown;
}

const REMOTE_KEYS = ['User', 'Hostname', 'Port', 'ApiKey', 'CurrentVolume', 'CurrentBranches', 'DefaultRemoteVolumes'];
const S3_KEYS = ['KeyID', 'SecretKey', 'Endpoint', 'DefaultRemoteVolumes'];
const TOP_KEYS = ['CurrentRemote', 'Remotes', 'S3Remotes'];

export function emptyConfig(): DmConfig {
  return { CurrentRemote: '', Remotes: {}, S3Remotes: {} };
}

export function newRemote(user: string, hostname: string, port: number, apiKey: string): DmRemote {
  return {
    User: user,
    Hostname: hostname,
    Port: port,
    ApiKey: apiKey,
    CurrentVolume: '',
    CurrentBranches: null,
    DefaultRemoteVolumes: null,
  };
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const mapOrNull = <T>(v: unknown): T | null => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as T) : null);

function normalizeRemote(raw: unknown): DmRemote {
  const r = obj(raw);
  return {
    ...r,
    User: str(r.User),
    Hostname: str(r.Hostname),
    Port: typeof r.Port === 'number' && Number.isInteger(r.Port) ? r.Port : 0,
    ApiKey: str(r.ApiKey),
    CurrentVolume: str(r.CurrentVolume),
    CurrentBranches: mapOrNull(r.CurrentBranches),
    DefaultRemoteVolumes: mapOrNull(r.DefaultRemoteVolumes),
  };
}

function normalizeS3(raw: unknown): S3Remote {
  const r = obj(raw);
  return {
    ...r,
    KeyID: str(r.KeyID),
    SecretKey: str(r.SecretKey),
    Endpoint: str(r.Endpoint),
    DefaultRemoteVolumes: mapOrNull(r.DefaultRemoteVolumes),
  };
}

/** Parses the file's text (Go semantics: missing fields are zero values). */
export function parseConfig(text: string, path = 'config'): DmConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new DotmeshError('INVALID_ARGUMENT', `cannot parse ${path}: ${(e as Error).message}`, {
      hint: 'fix or remove the file, then add your remotes again with `dm remote add`',
    });
  }
  const top = obj(raw);
  const remotes = Object.fromEntries(Object.entries(obj(top.Remotes)).map(([k, v]) => [k, normalizeRemote(v)]));
  const s3 = Object.fromEntries(Object.entries(obj(top.S3Remotes)).map(([k, v]) => [k, normalizeS3(v)]));
  return { ...top, CurrentRemote: str(top.CurrentRemote), Remotes: remotes, S3Remotes: s3 };
}

/** Known keys first in Go's struct order, then unknown keys as found. */
function ordered(
  value: Record<string, unknown>,
  known: readonly string[],
  omit: (k: string, v: unknown) => boolean = () => false,
) {
  const out: Record<string, unknown> = {};
  for (const k of known) if (!omit(k, value[k])) out[k] = value[k];
  for (const [k, v] of Object.entries(value)) if (!known.includes(k)) out[k] = v;
  return out;
}

/** Go's json.Marshal escapes <, >, & and U+2028/9 inside strings; so do we, for identical bytes. */
function goEscape(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Go's json.Marshal writes a map's keys sorted (byte order); `depth` levels of nested maps. */
function sortedMap(value: unknown, depth = 1): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || depth < 1) return value;
  const keys = Object.keys(value).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return Object.fromEntries(keys.map((k) => [k, sortedMap((value as Record<string, unknown>)[k], depth - 1)]));
}

/** A remote's Go maps (CurrentBranches, DefaultRemoteVolumes: namespace → dot) in Go's order. */
function withSortedMaps<T extends Record<string, unknown>>(r: T): T {
  const out: Record<string, unknown> = { ...r };
  if (Object.hasOwn(r, 'CurrentBranches')) out.CurrentBranches = sortedMap(r.CurrentBranches);
  if (Object.hasOwn(r, 'DefaultRemoteVolumes')) out.DefaultRemoteVolumes = sortedMap(r.DefaultRemoteVolumes, 2);
  return out as T;
}

export function serializeConfig(config: DmConfig): string {
  const remotes = Object.fromEntries(
    Object.entries(config.Remotes).map(([k, r]) => [
      k,
      ordered(withSortedMaps(r), REMOTE_KEYS, (key, v) => key === 'Port' && !v),
    ]),
  );
  const s3 = Object.fromEntries(Object.entries(config.S3Remotes).map(([k, r]) => [k, ordered(withSortedMaps(r), S3_KEYS)]));
  return goEscape(JSON.stringify(ordered({ ...config, Remotes: sortedMap(remotes), S3Remotes: sortedMap(s3) }, TOP_KEYS)));
}

/** Reads the config; a missing file is an empty config (as the original). */
export async function loadConfig(path: string): Promise<DmConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyConfig();
    throw new DotmeshError('INVALID_ARGUMENT', `cannot read ${path}: ${(e as Error).message}`);
  }
  return parseConfig(text, path);
}

export async function saveConfig(path: string, config: DmConfig): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, serializeConfig(config), { mode: 0o600 });
  await rename(tmp, path);
}

/** The display form used as a key in the config: `foo` for admin/foo, `ns/foo` otherwise. */
export function dotKey(name: string): string {
  return formatDotName(parseDotName(name));
}

function sameDot(a: string, b: string): boolean {
  try {
    return dotKey(a) === dotKey(b);
  } catch {
    return a === b;
  }
}

/** The remembered branch of a dot on a remote ("master" when none). */
export function currentBranchOf(remote: DmRemote, dot: string): string {
  return remote.CurrentBranches?.[dotKey(dot)] ?? 'master';
}

export function setCurrentBranch(remote: DmRemote, dot: string, branch: string): void {
  remote.CurrentBranches = { ...(remote.CurrentBranches ?? {}), [dotKey(dot)]: branch };
}

/** Forgets a deleted dot: its branch, selection and upstreams (as DeleteStateForVolume). */
export function forgetDot(remote: DmRemote, dot: string): void {
  const key = dotKey(dot);
  if (remote.CurrentBranches) delete remote.CurrentBranches[key];
  if (remote.CurrentVolume !== '' && sameDot(remote.CurrentVolume, key)) remote.CurrentVolume = '';
  const { namespace, name } = parseDotName(dot);
  const upstreams = remote.DefaultRemoteVolumes?.[namespace];
  if (upstreams) delete upstreams[name];
}

/**
 * The remembered upstream of a local dot on a remote (`DefaultRemoteVolumes[ns][name]` of the
 * PEER remote's record, as the original keeps it), or undefined.
 */
export function upstreamOf(remote: DmRemote, localNamespace: string, localName: string): VolumeRef | undefined {
  const ref = remote.DefaultRemoteVolumes?.[localNamespace]?.[localName];
  return ref && typeof ref.Namespace === 'string' && typeof ref.Name === 'string' ? ref : undefined;
}

/** Records (or replaces) the upstream of a local dot on a remote. */
export function setUpstream(remote: DmRemote, localNamespace: string, localName: string, upstream: VolumeRef): void {
  const all = remote.DefaultRemoteVolumes ?? {};
  all[localNamespace] = { ...(all[localNamespace] ?? {}), [localName]: { Namespace: upstream.Namespace, Name: upstream.Name } };
  remote.DefaultRemoteVolumes = all;
}
