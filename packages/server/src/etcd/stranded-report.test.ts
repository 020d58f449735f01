import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseStrandedReport } from '@dotmesh/rpc/etcd-stranded';
import { Cleanup, makeTempDir } from '@dotmesh/testkit';
import { knownVoters, writeStrandedReport } from './stranded-report.ts';

test('a stranded report: the voters are the most of the status file and the members the config followed', async (t) => {
  const cleanup = new Cleanup();
  t.after(() => cleanup.run());
  const dir = await makeTempDir('stranded', cleanup);
  const status = join(dir, 'etcd-member.json');
  const three = ['https://10.0.0.1:42379', 'https://10.0.0.2:42379', 'https://10.0.0.3:42379', 'https://127.0.0.1:42379'];
  assert.equal(await knownVoters(status, []), 1, 'no status file: itself');
  // The first node's status file was written when it was the only member; its config followed the joins.
  await writeFile(status, JSON.stringify({ name: 'a', voters: 1, members: 1 }));
  assert.equal(await knownVoters(status, three), 3);
  await writeFile(status, JSON.stringify({ name: 'c', voters: 3, members: 3 }));
  assert.equal(await knownVoters(status, ['https://10.0.0.3:42379']), 3);
  const file = join(dir, 'termination-log');
  const state = { raftIndex: 41, revision: 13, clusterId: '120599259228984516' };
  await writeStrandedReport(file, { nodeId: 'c', state, holdsCaKey: false, statusFile: status, knownEndpoints: [] });
  assert.deepEqual(parseStrandedReport(await readFile(file, 'utf8')), { nodeId: 'c', ...state, holdsCaKey: false, voters: 3 });
});
