import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pkiFiles } from '../tls/pki.ts';

/** The journal of a join's files in `<stateDir>/tls/`: `[staged, final]` pairs to move. */
const JOIN_JOURNAL = 'join-files.json';

/**
 * One file a join puts in place: `text` is staged as `<final>.join`; null: the staged file is
 * there already (a key the host made).
 */
export type JoinFile = readonly [final: string, text: string | null];

/**
 * Puts a join's files in place together (a rejoin replaces the certificates and keys the node
 * had): each text is staged beside its final file, the journal of moves is written (atomically:
 * the point after which the join counts as done), then the files are moved (finishJoinFiles).
 * A failure before the journal removes what it staged and changes nothing.
 */
export async function placeJoinFiles(stateDir: string, files: readonly JoinFile[]): Promise<void> {
  const staged: string[] = [];
  try {
    for (const [final, text] of files) {
      if (text === null) continue;
      staged.push(`${final}.join`);
      await writeFile(`${final}.join`, text, { mode: 0o644 });
    }
    const journal = join(pkiFiles(stateDir).dir, JOIN_JOURNAL);
    await writeFile(`${journal}.new`, JSON.stringify(files.map(([final]) => [`${final}.join`, final])), { mode: 0o600 });
    await rename(`${journal}.new`, journal);
  } catch (e) {
    for (const file of staged) await rm(file, { force: true });
    throw e;
  }
  await finishJoinFiles(stateDir);
}

/**
 * Finishes the move of a join's files into place when a journal is there (the join that wrote
 * it was stopped midway): each staged file still there replaces its final one, then the
 * journal goes. Run at start before any certificate is read; nothing to do without a journal.
 */
export async function finishJoinFiles(stateDir: string): Promise<void> {
  const journal = join(pkiFiles(stateDir).dir, JOIN_JOURNAL);
  const text = await readFile(journal, 'utf8').catch(() => null);
  if (text === null) return;
  for (const [from, to] of JSON.parse(text) as Array<[string, string]>) {
    await rename(from, to).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
  await rm(journal, { force: true });
}
