import { status as Status } from '@grpc/grpc-js';
import { CsiError, invalid } from './grpc-errors.ts';

/**
 * One page of `items` (sorted by id): those after `startingToken` (the id of the last entry of
 * the previous page, so that a page stays valid when that entry is deleted or others are
 * added), at most `maxEntries` (0: all). `isOurs` tells whether a token could be an id of the
 * driver; another token is ABORTED, as the spec says.
 */
export function page<T extends { readonly id: string }>(
  items: readonly T[],
  maxEntries: number,
  startingToken: string,
  isOurs: (token: string) => boolean,
): { readonly entries: T[]; readonly nextToken: string } {
  if (maxEntries < 0) throw invalid('max_entries cannot be negative');
  if (startingToken !== '' && !isOurs(startingToken)) {
    throw new CsiError(Status.ABORTED, 'starting_token is not a token this driver gave');
  }
  const sorted = [...items].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const rest = startingToken === '' ? sorted : sorted.filter((i) => i.id > startingToken);
  if (maxEntries === 0 || rest.length <= maxEntries) return { entries: rest, nextToken: '' };
  const entries = rest.slice(0, maxEntries);
  return { entries, nextToken: entries.at(-1)!.id };
}
