import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..');
const readme = readFileSync(join(repo, 'README.md'), 'utf8');

async function readmeCommand(n: number): Promise<string> {
  const { stdout } = await run(join(repo, 'scripts/readme-command'), [String(n)]);
  return stdout.trim();
}

test('README opens with the two commands, which run the install and the test suite', async () => {
  assert.equal(await readmeCommand(1), './scripts/install');
  assert.equal(await readmeCommand(2), './scripts/test-all');
  // They are the first two code blocks of the README.
  const blocks = [...readme.matchAll(/^```\w*\n([\s\S]*?)^```/gm)].map((m) => m[1]?.trim());
  assert.deepEqual(blocks.slice(0, 2), ['./scripts/install', './scripts/test-all']);
  for (const cmd of ['scripts/install', 'scripts/test-all']) {
    assert.ok(existsSync(join(repo, cmd)), `${cmd} exists`);
  }
});

test('.ci/run runs README commands 1 and 2 as extracted from the README, and the reset between them', () => {
  const ci = readFileSync(join(repo, '.ci/run'), 'utf8');
  const order = [
    'phase apt ',
    'phase install run_readme_command 1',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash array expansion, not a template
    'phase reset dm cluster reset "${RESET_ARGS[@]}"',
    'phase tests run_readme_command 2',
    'phase bench ',
  ];
  let at = -1;
  for (const step of order) {
    const i = ci.indexOf(step);
    assert.ok(i > at, `.ci/run runs "${step}" after the previous phase`);
    at = i;
  }
  assert.match(ci, /scripts\/readme-command "\$1"/);
  assert.match(ci, /^RESET_ARGS=\(--destroy-data\)$/m);
});

test('readme-command fails clearly for a missing block', async () => {
  await assert.rejects(run(join(repo, 'scripts/readme-command'), ['99']), (e: { code: number; stderr: string }) => {
    assert.equal(e.code, 1);
    assert.match(e.stderr, /no code block after '<!-- readme-command:99 -->'/);
    return true;
  });
});

test('relative links in README.md and docs/ point at files that exist', () => {
  for (const file of ['README.md', 'docs/install.md', 'docs/architecture.md']) {
    const text = readFileSync(join(repo, file), 'utf8');
    for (const m of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
      const target = m[1] ?? '';
      if (/^[a-z]+:/.test(target)) continue;
      assert.ok(existsSync(resolve(repo, file, '..', target)), `${file} links to missing ${target}`);
    }
  }
});
