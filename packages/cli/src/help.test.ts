import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from 'commander';
import type { CliApp } from './command.ts';
import { positionalSynopsis } from './help.ts';
import type { Io } from './io.ts';
import { buildProgram } from './main.ts';
import { runDm } from './testing/run-dm.ts';

/**
 * Every `dm … --help` page: a description, the real argument names (never commander's
 * `[args...]` placeholder), lines within 80 columns, and paragraphs that wrap cleanly.
 */
const WIDTH = 80;

const noIo: Io = {
  stdout: () => undefined,
  stderr: () => undefined,
  readLine: async () => null,
  sleep: async () => undefined,
  terminal: undefined,
};
const noApp: CliApp = {
  context: () => {
    throw new Error('help tests run no command');
  },
};

/** Every command of the tree with its path (`['dot', 'show']`), commander's `help` left out. */
function walk(cmd: Command, path: string[] = []): { path: string[]; cmd: Command }[] {
  return [{ path, cmd }, ...cmd.commands.filter((c) => c.name() !== 'help').flatMap((c) => walk(c, [...path, c.name()]))];
}

const commands = walk(buildProgram(noApp, noIo));

describe('dm help', () => {
  it('walks the whole tree', () => {
    const paths = commands.map((c) => c.path.join(' '));
    for (const p of ['', 'list', 'dot show', 'remote add', 'cluster init', 'mount', 'diff']) assert.ok(paths.includes(p), p);
  });

  for (const { path, cmd } of commands) {
    const name = ['dm', ...path].join(' ');
    it(`${name} --help: description, real argument names, ${WIDTH} columns`, async () => {
      const run = await runDm([...path, '--help'], { HOME: '/nonexistent' });
      assert.equal(run.code, 0, run.stderr);
      const lines = run.stdout.split('\n');
      const usage = lines[0] ?? '';
      assert.match(usage, new RegExp(`^Usage: ${name.replace(/\|/g, '\\|')}\\b`), usage);
      assert.doesNotMatch(run.stdout, /args\.\.\./, 'no [args...] placeholder anywhere');
      assert.doesNotMatch(usage, /\[command\]/, 'a command with subcommands needs one: <command>');
      assert.equal(lines[1], '');
      assert.ok(
        (lines[2] ?? '').trim() !== '' && !/^(Options|Commands):$/.test(lines[2] ?? ''),
        `no description:\n${run.stdout}`,
      );
      for (const line of lines) assert.ok(line.length <= WIDTH, `longer than ${WIDTH} columns: ${JSON.stringify(line)}`);
    });

    it(`${name}: paragraphs broken by hand fit in ${WIDTH} columns (so wrapping leaves no ragged lines)`, () => {
      const source = (cmd.description() || cmd.summary()).split('\n');
      source.forEach((line, i) => {
        const next = source[i + 1];
        if (line.length > WIDTH) {
          assert.ok(next === undefined || next.trim() === '', `a long line broken by hand: ${JSON.stringify(line)}`);
        }
      });
    });
  }

  it('lists subcommands by their arguments', async () => {
    const top = (await runDm(['--help'], { HOME: '/nonexistent' })).stdout;
    assert.match(top, /\n {2}mount <dot>\[@<branch>\] <mountpoint> +Mount a dot/);
    assert.match(top, /\n {2}checkout <branch> +/);
    assert.match(top, /\n {2}list\|ls +Enumerate dots/);
    assert.match(top, /\n {2}dot <command> +/);
    assert.match((await runDm(['remote', '--help'], { HOME: '/nonexistent' })).stdout, /\n {2}add <remote-name> /);
  });

  it('dm mount --help names <dot>@<branch>', async () => {
    const out = (await runDm(['mount', '--help'], { HOME: '/nonexistent' })).stdout;
    assert.match(out, /^Usage: dm mount \[-r\] <dot>\[@<branch>\] <mountpoint>\n/);
    assert.match(out, /<dot>@<branch>/);
  });

  it('dm diff --help wraps its paragraphs at 80 columns', async () => {
    const out = (await runDm(['diff', '--help'], { HOME: '/nonexistent' })).stdout;
    const body = out.slice(out.indexOf('\n\n') + 2, out.indexOf('\nOptions:'));
    const lines = body.split('\n');
    lines.forEach((line, i) => {
      const next = lines[i + 1];
      if (line === '' || next === undefined || next === '') return;
      const firstWord = next.trim().split(/\s+/)[0] ?? '';
      assert.ok(line.length + 1 + firstWord.length > WIDTH, `"${firstWord}" would have fitted after ${JSON.stringify(line)}`);
    });
    assert.match(body, /HEAD~2/);
  });

  it('positional synopsis drops flags and their values', () => {
    assert.equal(positionalSynopsis('-m <message> [-d <name=value>]...'), '');
    assert.equal(positionalSynopsis('[options] <remote> [<dot> [<branch>]]'), '<remote> [<dot> [<branch>]]');
    assert.equal(positionalSynopsis('[-b [--carry]] <branch>'), '<branch>');
    assert.equal(positionalSynopsis('[-r] <dot>[@<branch>] <mountpoint>'), '<dot>[@<branch>] <mountpoint>');
  });
});
