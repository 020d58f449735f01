import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.ts';
import { spawnTracked } from './process.ts';

export interface CsiSanityReport {
  /** csi-sanity's exit status. */
  readonly code: number | null;
  /** The last part of its output (for failure messages). */
  readonly output: string;
  readonly passed: readonly string[];
  readonly failed: readonly string[];
  readonly skipped: readonly string[];
}

/**
 * Runs csi-sanity (`bin`, from tools/k8s/build) against the CSI socket `socket`, with its mount
 * and staging folders under `dir` and `args` added, and reads the specs' outcomes from its JUnit
 * report (titles as csi-sanity writes them).
 */
export async function runCsiSanity(o: {
  readonly cleanup: Cleanup;
  readonly bin: string;
  readonly socket: string;
  readonly dir: string;
  readonly args?: readonly string[];
}): Promise<CsiSanityReport> {
  const junit = join(o.dir, 'junit.xml');
  const sanity = spawnTracked(
    o.bin,
    [
      `--csi.endpoint=unix://${o.socket}`,
      `--csi.mountdir=${join(o.dir, 'mount')}`,
      `--csi.stagingdir=${join(o.dir, 'staging')}`,
      `--ginkgo.junit-report=${junit}`,
      '--ginkgo.no-color',
      ...(o.args ?? []),
    ],
    { cleanup: o.cleanup },
  );
  const { code } = await sanity.exited;
  const report = await readFile(junit, 'utf8').catch(() => '');
  const cases = [...report.matchAll(/<testcase name="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)].map((m) => ({
    name: decodeXml(m[1]!),
    body: m[3] ?? '',
  }));
  return {
    code,
    output: sanity.output().slice(-20_000),
    failed: cases.filter((c) => /<failure|<error/.test(c.body)).map((c) => c.name),
    skipped: cases.filter((c) => /<skipped/.test(c.body)).map((c) => c.name),
    passed: cases.filter((c) => !/<failure|<error|<skipped/.test(c.body)).map((c) => c.name),
  };
}

function decodeXml(s: string): string {
  return s
    .replaceAll('&#34;', '"')
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}
