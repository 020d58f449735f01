import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecLogger } from '../exec.ts';
import { STORAGE_ID_PATTERN } from '../ids.ts';
import type { BtrfsCli } from './btrfs-cli.ts';
import { exists, findSubvolumes, fsyncPath, isSubvolumeRoot, listDir, readJsonObject } from './fsutil.ts';
import type { Layout } from './layout.ts';

/**
 * Intent of an operation that swaps subvolumes (kept as `staging/<op>/intent.json`, written
 * before the first irreversible step). Other staging directories need no intent: until their
 * final rename nothing is visible, so they are simply discarded.
 */
export interface RollbackIntent {
  readonly kind: 'rollback';
  readonly volumeId: string;
  readonly commitId: string;
}

/** Deletes every subvolume under `dir` (deepest first), then the directory itself. */
export async function purge(cli: BtrfsCli, dir: string): Promise<void> {
  if (!(await exists(dir))) return;
  await cli.delete(await findSubvolumes(dir));
  await rm(dir, { recursive: true, force: true });
}

/**
 * Brings the pool back to a consistent state after a crash; idempotent, and a no-op with an
 * empty report on a clean pool. Must run before any other operation (open()).
 *  - staging/<op> with a rollback intent: finish the swap if the old live was already moved
 *    away (live missing: rename the new one into place), else discard the new one;
 *  - any other staging/<op>: unfinished create/import: discard (nothing was visible);
 *  - trash/<op>: finish the deletion;
 *  - fs/<id>/commits/<c>/ without its snapshot (commit or deleteCommit interrupted): remove;
 *  - leftover `.*.tmp` files of atomic writes: remove.
 */
export async function recover(layout: Layout, cli: BtrfsCli, logger: ExecLogger): Promise<string[]> {
  const actions: string[] = [];
  const note = (action: string) => {
    actions.push(action);
    logger.warn({ action }, 'storage recovery');
  };
  for (const op of await listDir(layout.stagingDir)) {
    const dir = layout.staging(op);
    const intent = await readJsonObject(join(dir, 'intent.json')).catch(() => undefined);
    if (intent?.kind === 'rollback' && typeof intent.volumeId === 'string' && STORAGE_ID_PATTERN.test(intent.volumeId)) {
      note(await recoverRollback(layout, dir, intent as unknown as RollbackIntent));
    } else {
      note(`discarded unfinished operation ${op} (staging)`);
    }
    await purge(cli, dir);
  }
  for (const op of await listDir(layout.trashDir)) {
    await purge(cli, layout.trash(op));
    note(`finished deleting ${op}`);
  }
  for (const id of await listDir(layout.fsDir)) {
    if (!STORAGE_ID_PATTERN.test(id)) continue;
    for (const name of await listDir(layout.volume(id))) {
      if (/^\..*\.tmp$/.test(name)) {
        await rm(join(layout.volume(id), name), { force: true });
        note(`removed leftover temporary file ${name} of volume ${id}`);
      }
    }
    for (const commitId of await listDir(layout.commitsDir(id))) {
      if (!STORAGE_ID_PATTERN.test(commitId) || (await isSubvolumeRoot(layout.commit(id, commitId)))) continue;
      await rm(layout.commitBox(id, commitId), { recursive: true, force: true });
      note(`removed empty box of unfinished commit ${commitId} of volume ${id}`);
    }
  }
  return actions;
}

/** Completes or undoes one interrupted rollback; the caller purges the op directory afterwards. */
async function recoverRollback(layout: Layout, opDir: string, intent: RollbackIntent): Promise<string> {
  const id = intent.volumeId;
  const what = `rollback of volume ${id} to commit ${intent.commitId}`;
  if (!(await exists(layout.volume(id)))) return `discarded interrupted ${what} (volume deleted)`;
  const live = layout.live(id);
  if (await exists(live)) {
    return (await isSubvolumeRoot(join(opDir, 'new'))) ? `undid interrupted ${what} (not yet swapped)` : `finished ${what}`;
  }
  if (await isSubvolumeRoot(join(opDir, 'new'))) {
    await rename(join(opDir, 'new'), live);
    await fsyncPath(layout.volume(id));
    return `completed interrupted ${what}`;
  }
  if (await isSubvolumeRoot(join(opDir, 'old'))) {
    await rename(join(opDir, 'old'), live);
    await fsyncPath(layout.volume(id));
    return `restored the live state of volume ${id} after an interrupted rollback`;
  }
  return `volume ${id} has no live state after an interrupted rollback (left as is)`;
}
