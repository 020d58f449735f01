import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import { disruptionOf, parsePreStop, preStop, waitForNoUse } from './kubernetes-prestop.ts';

const env = { POD_NAME: 'server-n', POD_NAMESPACE: 'dotmesh', DOTMESH_NODE_IP: '10.0.0.1', KUBERNETES_SERVICE_HOST: '10.96.0.1' };

describe('dotmesh-server pre-stop', () => {
  it('reads its pod, node address and key file from the pod’s environment and flags', () => {
    const o = parsePreStop(['--admin-api-key-file=/secret/k', '--timeout-seconds=7'], env);
    assert.equal(o.podName, 'server-n');
    assert.equal(o.nodeAddress, '10.0.0.1');
    assert.equal(o.timeoutSeconds, 7);
    assert.equal(o.apiPort, '443');
  });
  it('refuses a missing key file, a bad timeout and a missing environment, naming them', () => {
    for (const [argv, e, want] of [
      [[], env, /--admin-api-key-file/],
      [['--admin-api-key-file=/k', '--timeout-seconds=-1'], env, /timeout-seconds/],
      [['--admin-api-key-file=/k'], { ...env, POD_NAME: undefined }, /POD_NAME/],
    ] as const) {
      assert.throws(
        () => parsePreStop(argv, e),
        (err) => isDotmeshError(err) && err.code === 'INVALID_ARGUMENT' && want.test(err.message),
      );
    }
  });
  it('waits only when the pod is being disrupted (evicted)', () => {
    assert.equal(disruptionOf({}), undefined);
    assert.equal(disruptionOf({ status: { conditions: [{ type: 'Ready', status: 'True' }] } }), undefined);
    assert.equal(disruptionOf({ status: { conditions: [{ type: 'DisruptionTarget', status: 'False' }] } }), undefined);
    assert.equal(
      disruptionOf({ status: { conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'EvictionByEvictionAPI' }] } }),
      'EvictionByEvictionAPI',
    );
  });
  it('waits while uses are left or the server does not answer, and ends when none is left', async () => {
    const answers: (readonly unknown[] | Error)[] = [
      ['use'],
      new DotmeshError('UNAVAILABLE', 'timed out after 10000 ms waiting for dotmesh-server'),
      ['use'],
      [],
    ];
    const lines: string[] = [];
    let calls = 0;
    const client = {
      call: async () => {
        const a = answers[calls++]!;
        if (a instanceof Error) throw a;
        return { Uses: a };
      },
    };
    await waitForNoUse(client, { timeoutSeconds: 60, pollMs: 1, say: (l) => lines.push(l) });
    assert.equal(calls, 4);
    assert.match(lines.at(-1)!, /no use left: stopping/);
  });
  it('stops waiting once the server refuses connections (it stopped; no unmount can reach it)', async () => {
    const lines: string[] = [];
    let calls = 0;
    const refusedError = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:32607'), { code: 'ECONNREFUSED' });
    const client = {
      call: async () => {
        calls++;
        if (calls === 1) return { Uses: ['use'] };
        throw new DotmeshError('UNAVAILABLE', 'cannot reach dotmesh-server', { cause: refusedError });
      },
    };
    const started = Date.now();
    await waitForNoUse(client, { timeoutSeconds: 60, pollMs: 1, say: (l) => lines.push(l) });
    assert.equal(calls, 2);
    assert.ok(Date.now() - started < 5_000);
    assert.match(lines.at(-1)!, /refuses connections \(it stopped\): stopping/);
  });
  it('does not wait when it cannot read its pod (no API server), and says why', async () => {
    const lines: string[] = [];
    const started = Date.now();
    await preStop({
      ...parsePreStop(['--admin-api-key-file=/nonexistent'], { ...env, KUBERNETES_SERVICE_HOST: '' }),
      say: (l) => lines.push(l),
    });
    assert.ok(Date.now() - started < 5_000);
    assert.match(lines.join('\n'), /cannot read pod dotmesh\/server-n .*KUBERNETES_SERVICE_HOST.*stopping without waiting/);
  });
});
