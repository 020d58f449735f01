import { rename, stat } from 'node:fs/promises';
import { DotmeshError } from '@dotmesh/core';
import { EmbeddedStore, type Store } from '@dotmesh/store';
import type { Logger } from './log.ts';

/**
 * Moving a single-node cluster from the embedded store to etcd (`dm cluster init --store etcd`
 * on a pool dir that ran on the embedded store): at start, before anything else touches the
 * new store, every key of the embedded store file that is not bound to a lease (users, names,
 * branches, masters, tombstones, transfer records — the node's own lease-bound keys are
 * rewritten by its start-up) is copied into `target`, each only if absent there. A target that
 * already holds keys of a cluster is refused (CONFLICT) before anything is written. The file is
 * then renamed `<file>.imported` (kept as a backup), so the import runs once; an import cut
 * half-way runs again at the next start (its keys are created only where absent).
 */
/** Returns how many keys were copied; null when there is no file to import (done already). */
export async function importEmbeddedStore(o: { file: string; target: Store; logger: Logger }): Promise<number | null> {
  if (
    !(await stat(o.file).then(
      () => true,
      () => false,
    ))
  )
    return null;
  const source = await EmbeddedStore.open({ path: o.file });
  let copied = 0;
  try {
    const kvs = (await source.range('')).kvs.filter((kv) => kv.lease === undefined);
    copied = kvs.length;
    const present = (await o.target.range('dotmesh.io/')).kvs.filter((kv) => kv.lease === undefined);
    const mine = new Map(kvs.map((kv) => [kv.key, kv.value]));
    const foreign = present.filter((kv) => mine.get(kv.key) !== kv.value);
    if (foreign.length > 0) {
      throw new DotmeshError(
        'CONFLICT',
        `the etcd store already holds keys of a cluster (${foreign[0]!.key}${foreign.length > 1 ? ` and ${foreign.length - 1} more` : ''}): refusing to move this node's embedded store ${o.file} into it`,
        {
          hint: 'give an empty etcd (or another key prefix); to join an existing cluster, use dm cluster join with a new pool dir',
        },
      );
    }
    for (const kv of kvs) {
      await o.target.txn({
        compare: [{ key: kv.key, target: 'version', op: '==', value: 0 }],
        success: [{ type: 'put', key: kv.key, value: kv.value }],
      });
    }
    o.logger.info({ keys: kvs.length, from: o.file }, 'moved the embedded store into etcd');
  } finally {
    await source.close();
  }
  await rename(o.file, `${o.file}.imported`);
  return copied;
}
