import { DotmeshError } from '@dotmesh/core';

/**
 * Semantic versions (semver.org 2.0): `MAJOR.MINOR.PATCH[-prerelease][+build]`, an optional
 * leading `v` allowed. Pure; used to refuse server downgrades.
 */
export interface SemVer {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  readonly prerelease: readonly string[];
}

const PATTERN = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$/;

/** INVALID_ARGUMENT naming `what` when `text` is not a semantic version. */
export function parseSemVer(text: string, what: string): SemVer {
  const m = PATTERN.exec(text.trim());
  if (!m) {
    throw new DotmeshError('INVALID_ARGUMENT', `${what} reports version ${JSON.stringify(text.trim())}, not a semantic version`, {
      hint: 'expected MAJOR.MINOR.PATCH, e.g. 0.2.0',
    });
  }
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), prerelease: m[4] ? m[4].split('.') : [] };
}

/** <0 when a < b, 0 when equal (build metadata ignored), >0 when a > b; semver precedence rules. */
export function compareSemVer(a: SemVer, b: SemVer): number {
  for (const k of ['major', 'minor', 'patch'] as const) if (a[k] !== b[k]) return a[k] - b[k];
  if (a.prerelease.length === 0 || b.prerelease.length === 0) return b.prerelease.length - a.prerelease.length;
  for (let i = 0; i < Math.max(a.prerelease.length, b.prerelease.length); i++) {
    const x = a.prerelease[i];
    const y = b.prerelease[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x === y) continue;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny) return Number(x) - Number(y);
    if (nx !== ny) return nx ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return 0;
}
