import { describe } from 'node:test';
import { commitSizeCases } from './conformance-commit-sizes.ts';
import { dataCases } from './conformance-data.ts';
import { diffCases } from './conformance-diff.ts';
import { volumeCases } from './conformance-volumes.ts';
import type { StorageDriver } from './driver.ts';

export { rejectsWithCode } from './conformance-util.ts';

/**
 * The one conformance suite every StorageDriver runs (`runDriverConformance`). A harness
 * stands in for a container writing into a volume's live state, since drivers such as the
 * memory driver have no real paths.
 */
export interface DriverHarness {
  readonly driver: StorageDriver;
  writeFile(volumeId: string, relPath: string, data: string | Buffer): Promise<void>;
  readFile(volumeId: string, relPath: string): Promise<Buffer>;
  readCommitFile(volumeId: string, commitId: string, relPath: string): Promise<Buffer>;
  removeFile(volumeId: string, relPath: string): Promise<void>;
  /** Moves a file or a directory inside the live state, as rename(2). */
  renamePath(volumeId: string, from: string, to: string): Promise<void>;
  /** Removes a file or a directory with everything below it (`rm -r`). */
  removePath(volumeId: string, relPath: string): Promise<void>;
  /** A second, independent pool (for export/import between pools); the suite uses the same pool without it. */
  makeSecondHarness?(): Promise<DriverHarness>;
  /** Releases everything the harness made (also its second harness). */
  cleanup(): Promise<void>;
}

export interface ConformanceOptions {
  /** A reason to skip the whole suite, or false. */
  readonly skip?: string | false;
}

export function runDriverConformance(
  name: string,
  makeHarness: () => Promise<DriverHarness>,
  options: ConformanceOptions = {},
): void {
  describe(`StorageDriver conformance: ${name}`, { skip: options.skip ?? false }, () => {
    const withHarness = (body: (h: DriverHarness, d: StorageDriver) => Promise<void>) => async () => {
      const h = await makeHarness();
      try {
        await h.driver.open();
        await body(h, h.driver);
      } finally {
        await h.cleanup();
      }
    };
    volumeCases(withHarness);
    dataCases(withHarness);
    diffCases(withHarness);
    commitSizeCases(withHarness);
  });
}
