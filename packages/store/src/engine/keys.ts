/**
 * Key order of the store: Unicode code point order, which is the byte order of the keys'
 * UTF-8 encoding (etcd's order and sqlite's BINARY collation). JavaScript's default string
 * order (UTF-16 code units) differs for characters above U+FFFF, hence this comparator.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Moves surrogates (U+D800–U+DFFF, i.e. code points ≥ U+10000) above U+E000–U+FFFF. */
function codePointRank(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}

export function hasPrefix(key: string, prefix: string): boolean {
  return key.startsWith(prefix);
}
