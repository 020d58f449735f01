import { DotmeshError } from './errors.ts';
import { COMMIT_ID_PATTERN, NAME_PATTERN_TEXT } from './names.ts';
import { utf8ByteLength } from './utf8.ts';

/** Metadata key that overrides the id of a new commit, as in the original. */
export const COMMIT_ID_OVERRIDE_KEY = '#commit-id';
/**
 * Metadata key of a retained commit (value `true`): it outlives the deletion of its branch (the
 * branch is then kept, retired, for it) and a rollback, until DeleteCommit removes it. The CSI
 * driver's snapshots are retained commits.
 */
export const RETAIN_METADATA_KEY = 'retain';

export function isRetained(metadata: Readonly<Record<string, string>>): boolean {
  return metadata[RETAIN_METADATA_KEY] === 'true';
}
/** Upper bounds that keep one request from filling the pool's metadata. */
export const MAX_METADATA_KEYS = 256;
export const MAX_METADATA_KEY_BYTES = 256;
export const MAX_METADATA_VALUE_BYTES = 64 * 1024;
export const MAX_MESSAGE_BYTES = 64 * 1024;

export type CommitMetadata = Record<string, string>;

/**
 * Validates user-supplied commit metadata and splits off the `#commit-id` override.
 * Rule kept from the original: a key's first character must differ from its upper-case
 * form (so it must be a lowercase letter; digits and symbols are refused too).
 */
export function validateCommitMetadata(input: unknown): { metadata: CommitMetadata; commitIdOverride?: string } {
  if (input === undefined || input === null) return { metadata: {} };
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new DotmeshError('INVALID_METADATA', 'Metadata must be an object of string values');
  }
  const entries = Object.entries(input as Record<string, unknown>);
  if (entries.length > MAX_METADATA_KEYS) {
    throw new DotmeshError('INVALID_METADATA', `Too many metadata fields: ${entries.length} (at most ${MAX_METADATA_KEYS})`);
  }
  const metadata: CommitMetadata = {};
  let commitIdOverride: string | undefined;
  for (const [key, value] of entries) {
    if (typeof value !== 'string') {
      throw new DotmeshError('INVALID_METADATA', `Metadata field ${JSON.stringify(key)} must be a string`);
    }
    if (key === COMMIT_ID_OVERRIDE_KEY) {
      if (!COMMIT_ID_PATTERN.test(value)) {
        throw new DotmeshError(
          'INVALID_METADATA',
          `invalid commit id ${JSON.stringify(value.slice(0, 80))} in ${COMMIT_ID_OVERRIDE_KEY}, should match pattern: ${NAME_PATTERN_TEXT}`,
        );
      }
      commitIdOverride = value;
      continue;
    }
    const first = key.charAt(0);
    if (key === '' || first === first.toUpperCase()) {
      throw new DotmeshError(
        'INVALID_METADATA',
        `Metadata field names must start with lowercase characters: ${key.slice(0, 256)}`,
      );
    }
    if (utf8ByteLength(key) > MAX_METADATA_KEY_BYTES || key.includes('\0')) {
      throw new DotmeshError('INVALID_METADATA', `Metadata field name too long or invalid: ${key.slice(0, 80)}…`);
    }
    if (utf8ByteLength(value) > MAX_METADATA_VALUE_BYTES) {
      throw new DotmeshError('INVALID_METADATA', `Metadata field ${key} is larger than ${MAX_METADATA_VALUE_BYTES} bytes`);
    }
    metadata[key] = value;
  }
  return commitIdOverride === undefined ? { metadata } : { metadata, commitIdOverride };
}
