import { chmod, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import type { JoinTokenCreated, JoinTokenInfo } from '@dotmesh/rpc';
import type { CommandContext } from '../context.ts';

/**
 * `dm cluster token create|list`: join tokens, made by the current remote's node
 * (CreateJoinToken). The secret is shown once: printed, or written into a new 0600 file
 * (`--token-file`, which the docs and tests use, so it is on no command line or screen).
 */
export interface TokenCreated {
  readonly id: string;
  readonly expires: string;
  readonly usesLeft: number | null;
  /** The token; null when it went into `tokenFile`. */
  readonly token: string | null;
  readonly tokenFile: string | null;
  readonly joinAddress: string;
  readonly caHash: string;
  /** The command to run on the host that joins (with the token in a file there). */
  readonly joinCommand: string;
}

const UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90s`, `30m`, `24h`, `7d` → seconds. */
export function parseTtl(text: string): number {
  const m = /^(\d+)([smhd])$/.exec(text.trim());
  if (!m) {
    throw new DotmeshError('INVALID_ARGUMENT', `invalid --ttl ${JSON.stringify(text)}`, {
      hint: 'a number and a unit: 90s, 30m, 24h, 7d',
    });
  }
  return Number(m[1]) * (UNITS[m[2]!] ?? 1);
}

export async function createToken(
  ctx: CommandContext,
  o: { ttl: string; uses: number; description: string; tokenFile: string | null },
): Promise<TokenCreated> {
  const ttlSeconds = parseTtl(o.ttl);
  if (ttlSeconds < 1) throw new DotmeshError('INVALID_ARGUMENT', '--ttl must be at least 1s');
  const file = o.tokenFile === null ? null : resolve(o.tokenFile);
  const created: JoinTokenCreated = await ctx.call('CreateJoinToken', {
    TtlSeconds: ttlSeconds,
    Uses: o.uses,
    Description: o.description,
  });
  if (file !== null) {
    try {
      await writeFile(file, `${created.Token}\n`, { mode: 0o600, flag: 'wx' });
      await chmod(file, 0o600);
    } catch (e) {
      await ctx.call('DeleteJoinToken', { Id: created.Id }).catch(() => undefined);
      throw new DotmeshError('INVALID_ARGUMENT', `cannot write the join token into ${file}: ${(e as Error).message}`, {
        hint: 'give a new file (it is never overwritten); the token made was deleted again',
      });
    }
  }
  return {
    id: created.Id,
    expires: created.Expires,
    usesLeft: created.UsesLeft,
    token: file === null ? created.Token : null,
    tokenFile: file,
    joinAddress: created.JoinAddress,
    caHash: created.CaHash,
    joinCommand: `dm cluster join ${created.JoinAddress} --ca-hash ${created.CaHash} --token-file <file holding the token>`,
  };
}

export function renderTokenCreated(r: TokenCreated): string[] {
  const uses = r.usesLeft === null ? 'any number of joins' : r.usesLeft === 1 ? 'one join' : `${r.usesLeft} joins`;
  return [
    r.token === null
      ? `Join token ${r.id} (${uses}, until ${r.expires}) written to ${r.tokenFile}.`
      : `Join token (${uses}, until ${r.expires}): ${r.token}`,
    'On the host to join, as root, with the token in a file only root reads (copy it there over a private channel):',
    `  ${r.joinCommand}`,
  ];
}

export function renderTokens(tokens: readonly JoinTokenInfo[]): string[] {
  if (tokens.length === 0) return ['No join tokens.'];
  const rows = tokens.map((t) => [t.Id, t.Expires, t.UsesLeft === null ? 'unlimited' : String(t.UsesLeft), t.Description]);
  const header = ['ID', 'EXPIRES', 'USES LEFT', 'DESCRIPTION'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}
