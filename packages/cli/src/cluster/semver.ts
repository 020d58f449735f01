import { DotmeshError } from '@dotmesh/core';
import { compare, parse } from 'semver';

/**
 * Server versions as semantic versions (semver.org 2.0, through the `semver` library):
 * `MAJOR.MINOR.PATCH[-prerelease][+build]`, a leading `v` allowed. Used to refuse server
 * downgrades and to tell an upgrade from a restart on the same version.
 */

/** The version `text` normalised (`v1.2.3\n` → `1.2.3`); INVALID_ARGUMENT naming `what` when it is not one. */
export function parseServerVersion(text: string, what: string): string {
  const parsed = parse(text.trim());
  if (!parsed) {
    throw new DotmeshError('INVALID_ARGUMENT', `${what} reports version ${JSON.stringify(text.trim())}, not a semantic version`, {
      hint: 'expected MAJOR.MINOR.PATCH, e.g. 0.2.0',
    });
  }
  return parsed.version;
}

/** <0 when a < b, 0 when equal (build metadata ignored), >0 when a > b, by semver precedence. */
export function compareServerVersions(a: { text: string; what: string }, b: { text: string; what: string }): number {
  return compare(parseServerVersion(a.text, a.what), parseServerVersion(b.text, b.what));
}
