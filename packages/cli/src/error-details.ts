import type { DotmeshError } from '@dotmesh/core';

/** Ids shown per side in a terminal; `--json` has all that the server sent. */
const SHOWN_IDS = 10;

/**
 * Lines that show a person an error's data, printed between its message and its hint. Only
 * data worth acting on has lines: a divergence (DIVERGED with a common commit) shows the
 * common commit and each side's commits after it. Everything else: none (`--json` shows all).
 */
export function errorDetailLines(e: DotmeshError): string[] {
  const d = e.data;
  if (e.code !== 'DIVERGED' || !d || !('common' in d)) return [];
  const common = typeof d.common === 'string' ? d.common : null;
  return [
    `common commit: ${common ?? 'none'}`,
    sideLine(text(d.sender, 'the sending side'), d.senderExtra, d.senderExtraCount),
    sideLine(text(d.receiver, 'the receiving side'), d.receiverExtra, d.receiverExtraCount),
  ];
}

function sideLine(side: string, extra: unknown, count: unknown): string {
  const ids = Array.isArray(extra) ? extra.filter((x): x is string => typeof x === 'string') : [];
  const total = typeof count === 'number' ? count : ids.length;
  if (total === 0) return `only on ${side}: no commits`;
  const shown = ids.slice(0, SHOWN_IDS);
  const more = total > shown.length ? ` and ${total - shown.length} more` : '';
  return `only on ${side}: ${shown.join(', ')}${more}`;
}

function text(v: unknown, fallback: string): string {
  return typeof v === 'string' && v !== '' ? v : fallback;
}
