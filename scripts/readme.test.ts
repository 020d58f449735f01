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

/** The top-level steps of .ci/run in order: `phase NAME COMMAND...` and `CLUSTER_UP=...` lines. */
function ciSteps(ci: string): string[] {
  return ci.split('\n').filter((l) => /^(?:phase |CLUSTER_UP=)/.test(l));
}

test('.ci/run runs command 2 beside the cluster of command 1, then the benchmarks, and tears the cluster down last', () => {
  const ci = readFileSync(join(repo, '.ci/run'), 'utf8');
  assert.deepEqual(ciSteps(ci), [
    'CLUSTER_UP=false',
    'phase apt apt_packages',
    'CLUSTER_UP=true',
    'phase install run_readme_command 1',
    'phase k8s-tools k8s_tools',
    'phase tests run_readme_command 2',
    'phase bench bench_smoke',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash array expansion, not a template
    'phase teardown dm cluster reset "${RESET_ARGS[@]}"',
    'CLUSTER_UP=false',
  ]);
  // Nothing else resets the cluster, except the EXIT trap while it is up (failure, interruption).
  const resets = ci.split('\n').filter((l) => /dm cluster reset/.test(l) && !l.trimStart().startsWith('#'));
  assert.equal(resets.length, 2, resets.join('\n'));
  const cleanup = /^cleanup\(\) \{\n([\s\S]*?)^\}/m.exec(ci)?.[1] ?? '';
  assert.match(
    cleanup,
    /if \[\[ \$CLUSTER_UP == true \]\][^\n]*\n(?:[^\n]*\n){0,2}[^\n]*dm cluster reset "\$\{RESET_ARGS\[@\]\}"/,
  );
  assert.match(ci, /^trap cleanup EXIT$/m);
  assert.match(ci, /scripts\/readme-command "\$1"/);
  assert.match(ci, /^RESET_ARGS=\(--destroy-data\)$/m);
  // apt-get update before anything is installed.
  const apt = /^apt_packages\(\) \{\n([\s\S]*?)^\}/m.exec(ci)?.[1] ?? '';
  assert.ok(apt.indexOf('apt-get update') >= 0 && apt.indexOf('apt-get update') < apt.indexOf('apt-get install'), apt);
  // Its own time guard: 85 minutes, inside the CI system's 90.
  assert.match(ci, /^readonly LIMIT_SECONDS=\$\{DOTMESH_CI_LIMIT_SECONDS:-5100\}$/m);
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
