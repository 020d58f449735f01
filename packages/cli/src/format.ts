/**
 * Output formatting shared by commands, matching the original Go client byte for byte.
 */

/** The original's prettyPrintSize: "-" for 0 (or less), else kiB/MiB/GiB with 2 decimals. */
export function prettySize(bytes: number): string {
  if (!(bytes > 0)) return '-';
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(2)} kiB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;
  return `${(bytes / (1024 * 1024 * 1024)).toFixed(2)} GiB`;
}

/**
 * Go's text/tabwriter as the original list uses it (minwidth 3, padding 2, pad with spaces,
 * no flags): every cell but a line's last is padded to its column's width + 2 (at least 3);
 * the last cell (after the last tab) is printed as is. Columns are aligned across all rows,
 * which is what tabwriter does when every row has the same number of cells.
 */
export function tabwrite(rows: readonly (readonly string[])[], minWidth = 3, padding = 2): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      if (i < row.length - 1) widths[i] = Math.max(widths[i] ?? 0, [...cell].length);
    });
  }
  return rows.map((row) =>
    row
      .map((cell, i) => {
        if (i === row.length - 1) return cell;
        const width = Math.max((widths[i] ?? 0) + padding, minWidth);
        return cell + ' '.repeat(width - [...cell].length);
      })
      .join(''),
  );
}

/** Go's `%+v` of a []string: `[a b c]`. */
export function goStringSlice(items: readonly string[]): string {
  return `[${items.join(' ')}]`;
}

/**
 * A commit timestamp (Unix nanoseconds as decimal text, the original's format) as a local date
 * in git's ISO style: `2026-11-26 12:26:52 +0100`. Anything else is shown as it is.
 */
export function formatTimestampNs(ns: string): string {
  if (!/^\d{1,20}$/.test(ns)) return ns;
  const date = new Date(Number(BigInt(ns) / 1_000_000n));
  if (Number.isNaN(date.getTime())) return ns;
  const pad = (n: number) => String(n).padStart(2, '0');
  const offset = -date.getTimezoneOffset();
  const zone = `${offset < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(offset) / 60))}${pad(Math.abs(offset) % 60)}`;
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${day} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${zone}`;
}
