import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type InProcessServer, startInProcess } from './in-process.ts';

/** GET /metrics: no auth, Prometheus text, counts that follow the operations, one registry per server. */

/** `name{labels} value` → value (labels written as in the exposition, sorted by prom-client). */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    if (line.slice(0, at) === series) return Number(line.slice(at + 1));
  }
  return undefined;
}

describe('GET /metrics', () => {
  let s: InProcessServer;
  let other: InProcessServer;
  const base = () => s.url.replace(/\/rpc$/, '');
  const scrape = async (server = s) => {
    const r = await fetch(`${server.url.replace(/\/rpc$/, '')}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return r.text();
  };
  before(async () => {
    s = await startInProcess();
    other = await startInProcess();
  });
  after(async () => {
    await s.close();
    await other.close();
  });

  test('counts requests, RPCs and operation outcomes; gauges read the pool and the index', async () => {
    const dot = { Namespace: 'admin', Name: 'm' };
    await s.admin.call('Create', dot);
    const c1 = await s.admin.call('Commit', { ...dot, Branch: '', Message: 'one', Metadata: {} });
    await s.admin.call('Commit', { ...dot, Branch: '', Message: 'two', Metadata: {} });
    await assert.rejects(s.admin.call('Commit', { Namespace: 'admin', Name: 'missing', Branch: '', Message: 'x', Metadata: {} }));
    await s.admin.call('Branch', { ...dot, SourceBranch: 'master', NewBranchName: 'b', SourceCommitId: c1 });
    await s.admin.call('Rollback', { ...dot, Branch: '', SnapshotId: c1 });
    await s.admin.call('Create', { Namespace: 'admin', Name: 'gone' });
    await s.admin.call('Delete', { Namespace: 'admin', Name: 'gone' });
    await assert.rejects(s.admin.call('Create', dot));
    await fetch(`${base()}/nowhere`);

    const text = await scrape();
    assert.equal(sample(text, 'dm_state_transition_total{op="commit",result="ok"}'), 2);
    assert.equal(sample(text, 'dm_state_transition_total{op="commit",result="error"}'), 1);
    assert.equal(sample(text, 'dm_state_transition_total{op="create",result="ok"}'), 2);
    assert.equal(sample(text, 'dm_state_transition_total{op="create",result="error"}'), 1);
    assert.equal(sample(text, 'dm_state_transition_total{op="branch",result="ok"}'), 1);
    assert.equal(sample(text, 'dm_state_transition_total{op="rollback",result="ok"}'), 1);
    assert.equal(sample(text, 'dm_state_transition_total{op="delete",result="ok"}'), 1);
    assert.equal(sample(text, 'dm_rpc_req_duration_seconds_count{method="Commit",outcome="ok"}'), 2);
    assert.equal(sample(text, 'dm_rpc_req_duration_seconds_count{method="Commit",outcome="error"}'), 1);
    assert.equal(sample(text, 'dm_commit_duration_seconds_count'), 2);
    assert.equal(sample(text, 'dm_req_total{method="POST",path="/rpc",code="200"}'), 9);
    assert.equal(sample(text, 'dm_req_total{method="GET",path="other",code="404"}'), 1);
    assert.equal(sample(text, 'dm_req_duration_seconds_count{method="POST",path="/rpc"}'), 9);
    assert.equal(sample(text, 'dm_dots'), 1);
    assert.equal(sample(text, 'dm_branches'), 2);
    const total = sample(text, 'dm_pool_bytes{kind="total"}')!;
    const used = sample(text, 'dm_pool_bytes{kind="used"}')!;
    const free = sample(text, 'dm_pool_bytes{kind="free"}')!;
    assert.equal(total, 1 << 30);
    assert.equal(used + free, total);
    assert.equal(sample(text, 'dm_zpool_usage_percentage'), (100 * used) / total);
    assert.match(text, /# TYPE dm_req_duration_seconds histogram/);

    const again = await scrape();
    assert.equal(sample(again, 'dm_req_total{method="GET",path="/metrics",code="200"}'), 1, 'the first scrape is counted');
  });

  test('each server has its own registry', async () => {
    const text = await scrape(other);
    assert.equal(sample(text, 'dm_state_transition_total{op="commit",result="ok"}'), undefined);
    assert.equal(sample(text, 'dm_dots'), 0);
  });

  test('only GET and HEAD; no credentials needed, none accepted as a reason to refuse', async () => {
    assert.equal((await fetch(`${base()}/metrics`, { method: 'POST' })).status, 405);
    const withBadAuth = await fetch(`${base()}/metrics`, { headers: { Authorization: 'Basic eDp5' } });
    assert.equal(withBadAuth.status, 200);
  });
});
