/**
 * The number of bytes `text` takes in UTF-8, without encoding it (core has no Buffer or
 * TextEncoder: it is the pure layer). A lone surrogate counts 3 bytes, the U+FFFD it is
 * encoded as, exactly as Node's `Buffer.byteLength(text, 'utf8')` counts it.
 */
export function utf8ByteLength(text: string): number {
  let bytes = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return bytes;
}
