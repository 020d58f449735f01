import type { Command, HelpConfiguration } from 'commander';

/**
 * How `dm … --help` shows commands. Every command declares its positional arguments as
 * `[args...]` (see command.ts), which commander would print as is; here help shows the
 * command's own usage instead:
 * - the Usage line is `dm <path> <usage>`: the usage given with `.usage()`, else only
 *   `[options]` (`<command>` for a command with subcommands), never `[args...]`;
 * - a command's list of subcommands shows each one's positional synopsis (its usage without
 *   flags: `checkout <branch>`, `mount <dot>[@<branch>] <mountpoint>`);
 * - the description falls back to the summary, so no help page is without one.
 * Paragraphs of descriptions are single lines wrapped by commander at the terminal's width
 * (80 columns when not a terminal); lines broken by hand stay within 80 columns.
 */
const ARGS_PLACEHOLDER = /\s*\[args\.\.\.\]/g;

/** The usage of a command as shown: its own, or commander's default without `[args...]`. */
export function shownUsage(cmd: Command): string {
  const usage = cmd.usage().replace(ARGS_PLACEHOLDER, '');
  return (cmd.commands.length > 0 ? usage.replace('[command]', '<command>') : usage).trim();
}

/** The usage without flag groups (`[-b]`, `[--x <y>]`, `[options]`): what goes in lists. */
export function positionalSynopsis(usage: string): string {
  const kept: string[] = [];
  let depth = 0;
  let group = '';
  for (const token of usage.split(/(\[|\]|\s+)/).filter((t) => t !== '')) {
    if (depth === 0 && /^\s+$/.test(token)) {
      if (group !== '') kept.push(group);
      group = '';
      continue;
    }
    if (token === '[') depth++;
    if (token === ']') depth--;
    group += token;
  }
  if (group !== '') kept.push(group);
  const out: string[] = [];
  for (let i = 0; i < kept.length; i++) {
    const g = kept[i] as string;
    if (g.startsWith('-')) {
      if (kept[i + 1]?.startsWith('<')) i++; // a flag's value: `-m <message>`
      continue;
    }
    if (!g.startsWith('[-') && g !== '[options]') out.push(g);
  }
  return out.join(' ');
}

function names(cmd: Command): string {
  const alias = cmd.aliases()[0];
  return alias === undefined ? cmd.name() : `${cmd.name()}|${alias}`;
}

export const HELP_CONFIGURATION: HelpConfiguration = {
  // Long argument synopses leave narrow description columns: wrap them all the same.
  minWidthToWrap: 20,
  commandUsage(cmd) {
    const path: string[] = [];
    for (let p = cmd.parent; p; p = p.parent) path.unshift(p.name());
    return [...path, names(cmd), shownUsage(cmd)].filter((s) => s !== '').join(' ');
  },
  commandDescription(cmd) {
    return cmd.description() || cmd.summary();
  },
  subcommandTerm(cmd) {
    const synopsis = positionalSynopsis(shownUsage(cmd));
    return synopsis === '' ? names(cmd) : `${names(cmd)} ${synopsis}`;
  },
};
