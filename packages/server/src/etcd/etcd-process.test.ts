import assert from 'node:assert/strict';
import { test } from 'node:test';
import { saysMemberRemoved } from './etcd-process.ts';

test("saysMemberRemoved: etcd's own words for a member the cluster removed, and nothing else", () => {
  // etcd 3.4's zap line when its member is removed while it runs (and at each start after).
  const removed =
    '{"level":"warn","ts":"2026-12-06T02:53:30.009Z","caller":"etcdserver/server.go:1078","msg":"server error","error":"the member has been permanently removed from the cluster"}\n' +
    '{"level":"warn","ts":"2026-12-06T02:53:30.009Z","caller":"etcdserver/server.go:1079","msg":"data-dir used by this member must be removed"}\n';
  assert.equal(saysMemberRemoved(removed), true);
  // The older wording (etcd's HTTP peer handler).
  assert.equal(saysMemberRemoved('etcdserver: this member has been permanently removed from the cluster'), true);
  // Another member's removal, seen by a member that stays, is not this member's.
  const other =
    '{"level":"info","caller":"membership/cluster.go:422","msg":"removed member","local-member-id":"8e9e05c52164694d","removed-remote-peer-id":"c13a1ff78f326e7c"}\n';
  assert.equal(saysMemberRemoved(other), false);
  assert.equal(saysMemberRemoved('{"level":"fatal","msg":"listen tcp 127.0.0.1:2379: bind: address already in use"}'), false);
});
