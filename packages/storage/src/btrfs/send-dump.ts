import type { FileChange } from '../driver.ts';

/**
 * Turns the output of `btrfs send --no-data -p <from> <to> | btrfs receive --dump` (btrfs-progs
 * 5.x/6.x) into file changes, without reading any file data.
 *
 * The stream replays, inode by inode, the operations that turn `from` into `to`. New inodes
 * are created under temporary names (`o<ino>-<gen>-0`) and renamed into place; entries that
 * stand in the way are first moved to such names ("orphanized"); a moved file appears as
 * `link new dest=old` + `unlink old`; a modified file as `update_extent`/`truncate`/... and
 * times as `utimes`. The parser tracks, for every path it has seen, where that entry came
 * from (its path in `from`, or nothing for a new inode), so temporary names never leak:
 *   new inode at its final path → `+`; original removed → `-`; original found at another
 *   path by its own move → `R`; original with data or attributes changed → `M`.
 * `utimes` alone is not a change (but still counts in `operations`). Paths are unescaped
 * (receive --dump escapes spaces, control characters and bytes outside ASCII).
 */
export interface DumpSummary {
  /** Unsorted, including the driver's own paths: pass through finishChanges(). */
  readonly changes: FileChange[];
  /** Operations in the stream besides its header: 0 means the two states are identical. */
  readonly operations: number;
}

interface Entry {
  /** Path in `from`, or null for an inode that `from` does not have. */
  readonly orig: string | null;
  /** How it reached its path, when by its own rename or link (not only as part of a moved directory). */
  readonly moved: 'rename' | 'link' | null;
  modified: boolean;
}

const CREATE = new Set(['mkfile', 'mkdir', 'mknod', 'mkfifo', 'mksock', 'symlink']);
const MODIFY = new Set([
  'write',
  'update_extent',
  'truncate',
  'clone',
  'set_xattr',
  'remove_xattr',
  'chmod',
  'chown',
  'fallocate',
  'fileattr',
  'enable_verity',
  'encoded_write',
]);

export class SendDumpParser {
  #prefix = '';
  #operations = 0;
  readonly #entries = new Map<string, Entry>();
  readonly #deleted = new Set<string>();

  /** Feeds one line of `btrfs receive --dump` output. */
  feed(line: string): void {
    if (line.trim() === '') return;
    const [command = '', rawPath, ...rest] = tokenize(line);
    if (rawPath === undefined) throw new Error(`cannot parse btrfs receive --dump line: ${line.slice(0, 300)}`);
    if (command === 'snapshot' || command === 'subvol') {
      this.#prefix = `${unescapePath(rawPath).replace(/\/+$/, '')}/`;
      return;
    }
    this.#operations++;
    const attrs = new Map<string, string>();
    for (const token of rest) {
      const eq = token.indexOf('=');
      if (eq > 0) attrs.set(token.slice(0, eq), token.slice(eq + 1));
    }
    const path = this.#relative(unescapePath(rawPath));
    if (path === '') return; // the subvolume's root directory itself
    if (CREATE.has(command)) {
      this.#entries.set(path, { orig: null, moved: null, modified: false });
    } else if (command === 'rename') {
      this.#rename(path, this.#relative(unescapePath(attrs.get('dest') ?? '')));
    } else if (command === 'link') {
      const target = this.#origin(this.#relative(unescapePath(attrs.get('dest') ?? '')));
      this.#entries.set(path, { orig: target.orig, moved: target.orig === null ? null : 'link', modified: false });
    } else if (command === 'unlink' || command === 'rmdir') {
      const e = this.#origin(path);
      this.#entries.delete(path);
      if (e.orig !== null) this.#deleted.add(e.orig);
    } else if (MODIFY.has(command) || command !== 'utimes') {
      // and any operation this parser does not know: a change of `path`, to be safe
      this.#touch(path).modified = true;
    }
  }

  finish(): DumpSummary {
    const changes: FileChange[] = [];
    const movedAway = new Set<string>();
    for (const [path, e] of this.#entries) {
      if (e.orig === null) changes.push({ change: '+', filename: path });
      else if (e.moved === 'rename' && e.orig !== path) {
        movedAway.add(e.orig);
        changes.push({ change: 'R', filename: e.orig, to: path });
      } else if (e.moved === 'link' && e.orig !== path) {
        // `link new dest=old` + `unlink old` is how a stream moves a file
        if (this.#deleted.has(e.orig) && !movedAway.has(e.orig)) {
          movedAway.add(e.orig);
          changes.push({ change: 'R', filename: e.orig, to: path });
        } else {
          // another name for an inode that kept its first one (a hard link)
          changes.push({ change: '+', filename: path });
        }
      } else if (e.modified) changes.push({ change: 'M', filename: path });
    }
    for (const orig of this.#deleted) if (!movedAway.has(orig)) changes.push({ change: '-', filename: orig });
    return { changes, operations: this.#operations };
  }

  /** Strips `./<subvolume>/` (paths) — `link` targets come without it. */
  #relative(full: string): string {
    if (full.startsWith(this.#prefix)) return full.slice(this.#prefix.length).replace(/\/+$/, '');
    if (`${full}/` === this.#prefix) return '';
    return full.replace(/^\.\//, '').replace(/\/+$/, '');
  }

  /** The entry now at `path`: tracked, or derived from the nearest tracked ancestor, or original. */
  #origin(path: string): Entry {
    const known = this.#entries.get(path);
    if (known) return known;
    for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
      const parent = this.#entries.get(path.slice(0, i));
      if (parent) return { orig: parent.orig === null ? null : parent.orig + path.slice(i), moved: null, modified: false };
    }
    return { orig: path, moved: null, modified: false };
  }

  #touch(path: string): Entry {
    const e = this.#origin(path);
    this.#entries.set(path, e);
    return e;
  }

  #rename(from: string, to: string): void {
    const e = this.#origin(from);
    this.#entries.delete(from);
    const replaced = this.#entries.get(to);
    if (replaced?.orig) this.#deleted.add(replaced.orig);
    // tracked entries below a moved directory move with it
    const below = `${from}/`;
    for (const [p, child] of [...this.#entries]) {
      if (p.startsWith(below)) {
        this.#entries.delete(p);
        this.#entries.set(to + p.slice(from.length), child);
      }
    }
    this.#entries.set(to, { ...e, moved: e.orig === null ? null : 'rename' });
  }
}

/** Splits a dump line on unescaped whitespace, keeping escapes inside tokens. */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length) {
      cur += c + line[i + 1];
      i++;
    } else if (c === ' ' || c === '\t') {
      if (cur !== '') out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (cur !== '') out.push(cur);
  return out;
}

const SIMPLE_ESCAPES: Record<string, number> = { a: 7, b: 8, e: 27, f: 12, n: 10, r: 13, t: 9, v: 11, ' ': 32, '\\': 92 };

/** Reverses btrfs-progs' print_path_escaped: `\n`-style escapes, `\ `, `\\` and `\ooo` octal bytes. */
export function unescapePath(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      const next = s[i + 1]!;
      const octal = /^[0-7]{3}$/.exec(s.slice(i + 1, i + 4));
      if (octal) {
        bytes.push(Number.parseInt(octal[0], 8) & 0xff);
        i += 3;
        continue;
      }
      const simple = SIMPLE_ESCAPES[next];
      if (simple !== undefined) {
        bytes.push(simple);
        i++;
        continue;
      }
    }
    for (const b of Buffer.from(c, 'utf8')) bytes.push(b);
  }
  return Buffer.from(bytes).toString('utf8');
}
