import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Secret } from '@kubernetes/client-node';
import {
  chooseJoinIssuer,
  JOIN_TOKEN_EXPIRES_ANNOTATION,
  joinSecretNode,
  joinTokenExpiry,
  orphanedJoinSecrets,
  staleJoinSecrets,
} from './join-secrets.ts';
import { JOIN_SECRET_LABEL } from './server-pod.ts';

test('join tokens are made through a serving node that holds the CA key, whatever the pods’ order', () => {
  assert.deepEqual(
    chooseJoinIssuer([
      { address: '10.0.0.12', holdsCaKey: false },
      { address: '10.0.0.11', holdsCaKey: true },
      { address: '10.0.0.13', holdsCaKey: false },
    ]),
    { address: '10.0.0.11', holdsCaKey: true },
  );
  assert.deepEqual(
    chooseJoinIssuer([
      { address: '10.0.0.12', holdsCaKey: false },
      { address: '10.0.0.13', holdsCaKey: undefined },
    ]),
    { address: '10.0.0.13', holdsCaKey: true },
    'a server too old to say is tried rather than one that says no',
  );
  // The CA holder down (its pod being made again): its Secret, which it does not read, still
  // comes through another node, or it never gets its pod back.
  assert.deepEqual(chooseJoinIssuer([{ address: '10.0.0.12', holdsCaKey: false }]), {
    address: '10.0.0.12',
    holdsCaKey: false,
  });
  assert.equal(chooseJoinIssuer([]), undefined);
});

const secret = (node: string, o: { expires?: string; created?: string } = {}): V1Secret => ({
  metadata: {
    name: `dotmesh-join-${node}`,
    labels: { [JOIN_SECRET_LABEL]: node },
    ...(o.expires ? { annotations: { [JOIN_TOKEN_EXPIRES_ANNOTATION]: o.expires } } : {}),
    ...(o.created ? { creationTimestamp: new Date(o.created) } : {}),
  },
});

test('a join Secret is renewed before a pod is made with it once its token expires (or nearly); others are left alone', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  const secrets = [
    secret('expired', { expires: '2026-01-01T11:59:00Z' }),
    secret('nearly', { expires: '2026-01-01T12:01:00Z' }),
    secret('fresh', { expires: '2026-01-01T12:50:00Z' }),
    // An older operator's Secret (no annotation): its creation plus the hour.
    secret('old-style', { created: '2026-01-01T10:30:00Z' }),
    secret('old-style-fresh', { created: '2026-01-01T11:30:00Z' }),
    secret('expired-no-pod-made', { expires: '2026-01-01T11:00:00Z' }),
  ];
  assert.equal(joinTokenExpiry(secrets[3]!), Date.parse('2026-01-01T11:30:00Z'));
  const creating = ['expired', 'nearly', 'fresh', 'old-style', 'old-style-fresh'];
  assert.deepEqual(staleJoinSecrets(secrets, creating, now).map(joinSecretNode), ['expired', 'nearly', 'old-style']);
});

test('the join Secrets of Nodes that are gone are found for deletion', () => {
  const secrets = [secret('node-0'), secret('node-3'), secret('node-4')];
  assert.deepEqual(orphanedJoinSecrets(secrets, new Set(['node-0', 'node-4'])).map(joinSecretNode), ['node-3']);
});
