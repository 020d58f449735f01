import { DotmeshError } from './errors.ts';
import { DEFAULT_SUBDOT, MASTER_BRANCH, normalizeBranch, parseDotName, ROOT_SUBDOT, validateName } from './names.ts';

/**
 * A Docker volume name of the `dm` driver: `[ns/]dot[@branch][.subdot]`.
 * `@master` is the same as no branch; no subdot means `__default__`; `.__root__` is the
 * dot's root directory.
 */
export interface VolumeName {
  readonly namespace: string;
  readonly dot: string;
  /** The pinned branch; undefined: the branch the dot's containers follow (master until a checkout). */
  readonly pinnedBranch: string | undefined;
  /** A subdirectory of the dot (`__default__` when none was named), or ROOT_SUBDOT for its root. */
  readonly subdot: string;
}

const SUBDOT_FORBIDDEN = /[$:/.@]/;

/**
 * Parses and validates a volume name with the original's error texts: more than one `.` is
 * `Volume names must be of the form [NAMESPACE/]DOT[.SUBDOT]`, more than one `/` is
 * `Volume names must be of the form NAMESPACE/VOLUME or just VOLUME`.
 */
export function parseVolumeName(input: unknown): VolumeName {
  if (typeof input !== 'string' || input === '') {
    throw new DotmeshError('INVALID_NAME', 'volume name cannot be empty', {
      hint: 'name a dot: [NAMESPACE/]DOT[@BRANCH][.SUBDOT]',
    });
  }
  const parts = input.split('.');
  if (parts.length > 2) {
    throw new DotmeshError('INVALID_NAME', `Volume names must be of the form [NAMESPACE/]DOT[.SUBDOT]: '${input}'`);
  }
  const [dotPart = '', subdotPart] = parts;
  if (subdotPart !== undefined && SUBDOT_FORBIDDEN.test(subdotPart)) {
    throw new DotmeshError('INVALID_NAME', `Subdot names must not contain $, :, /, ., or @: '${input}'`);
  }
  const at = dotPart.indexOf('@');
  const dotAndNamespace = at >= 0 ? dotPart.slice(0, at) : dotPart;
  const branchPart = at >= 0 ? dotPart.slice(at + 1) : undefined;
  if (branchPart === '') throw new DotmeshError('INVALID_NAME', `branch cannot be empty after '@': '${input}'`);
  const { namespace, name } = parseDotName(dotAndNamespace);
  const branch = branchPart === undefined ? undefined : normalizeBranch(branchPart);
  const subdot =
    subdotPart === undefined ? DEFAULT_SUBDOT : subdotPart === ROOT_SUBDOT ? ROOT_SUBDOT : validateName('subdot', subdotPart);
  return { namespace, dot: name, pinnedBranch: branch === MASTER_BRANCH ? undefined : branch, subdot };
}

/** The canonical spelling: `admin/` and `@master` dropped, `.__default__` dropped. */
export function formatVolumeName(v: VolumeName): string {
  const ns = v.namespace === 'admin' ? '' : `${v.namespace}/`;
  const branch = v.pinnedBranch === undefined ? '' : `@${v.pinnedBranch}`;
  const subdot = v.subdot === DEFAULT_SUBDOT ? '' : `.${v.subdot}`;
  return `${ns}${v.dot}${branch}${subdot}`;
}
